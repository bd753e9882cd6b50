import ujson

assert ujson.loads(ujson.dumps({"pi": 3.14159, "s": "é"})) == {"pi": 3.14159, "s": "é"}
assert ujson.dumps(1e300) == "1e+300"
