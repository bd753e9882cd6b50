from cffi import FFI

import _cffi_backend

assert _cffi_backend.__version__, "the C backend is in use"

# ABI mode: functions found with dlsym in the interpreter itself and in libc.so.6, though
# nothing in the static interpreter calls them (all of glibc's public functions are linked)
ffi = FFI()
ffi.cdef("int abs(int); int strverscmp(const char *, const char *); size_t strlen(const char *);")
C = ffi.dlopen(None)
assert C.abs(-5) == 5
assert C.strverscmp(b"a2", b"a10") < 0
libc = ffi.dlopen("libc.so.6")
assert libc.strlen(b"static") == 6
buffer = ffi.new("char[]", b"cffi")
assert ffi.string(buffer) == b"cffi" and ffi.sizeof(buffer) == 5
