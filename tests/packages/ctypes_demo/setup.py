from setuptools import Extension, setup

# libdemo is not a Python extension module: a C library the package opens with ctypes;
# _optional imports a module no package provides
setup(
    packages=["ctypes_demo"],
    ext_modules=[
        Extension("ctypes_demo.libdemo", ["demo.c"]),
        Extension("ctypes_demo._optional", ["optional.c"]),
    ],
)
