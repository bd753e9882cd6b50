import ctypes
import glob
import os

_path = glob.glob(os.path.join(os.path.dirname(__file__), "libdemo*.so"))[0]
_lib = ctypes.CDLL(_path)


def triple_plus_one(x):
    return _lib.triple_plus_one(x)
