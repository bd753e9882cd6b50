/* An extension module whose import needs a package nobody installed (as greenlet's
 * test modules need psutil): `dlstatic verify` reports it as a warning naming the
 * missing module, not as a failed static link. */
#include <Python.h>

static struct PyModuleDef optional_module = {PyModuleDef_HEAD_INIT, "_optional", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__optional(void)
{
    PyObject *dependency = PyImport_ImportModule("ctypes_demo_missing_dependency");
    if (!dependency)
        return NULL;
    Py_DECREF(dependency);
    return PyModule_Create(&optional_module);
}
