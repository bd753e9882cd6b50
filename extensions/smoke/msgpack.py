import msgpack
from msgpack import _cmsgpack

assert msgpack.Packer is _cmsgpack.Packer, "C extension not in use"
assert msgpack.unpackb(msgpack.packb({"k": [1, b"x", 2.5]})) == {"k": [1, b"x", 2.5]}
