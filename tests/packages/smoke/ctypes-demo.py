import ctypes_demo

assert ctypes_demo.triple_plus_one(4) == 13
