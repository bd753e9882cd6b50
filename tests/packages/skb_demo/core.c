#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* same name as globals in other test modules: renaming keeps them apart */
int helper(int a, int b) { return a * 100 + b; }

static PyObject *combine(PyObject *self, PyObject *args)
{
    int a, b;
    if (!PyArg_ParseTuple(args, "ii", &a, &b))
        return NULL;
    return PyLong_FromLong(helper(a, b));
}

static PyMethodDef methods[] = {{"combine", combine, METH_VARARGS, "a * 100 + b"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_core", NULL, -1, methods};

PyMODINIT_FUNC PyInit__core(void) { return PyModule_Create(&module); }
