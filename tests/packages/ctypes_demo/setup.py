from setuptools import Extension, setup

# not a Python extension module: a C library the package opens with ctypes
setup(packages=["ctypes_demo"], ext_modules=[Extension("ctypes_demo.libdemo", ["demo.c"])])
