import simplejson
from simplejson import _speedups

assert simplejson.decoder.c_scanstring is _speedups.scanstring, "C speedups not in use"
assert simplejson.loads(simplejson.dumps({"a": [1, 2.5, None]})) == {"a": [1, 2.5, None]}
