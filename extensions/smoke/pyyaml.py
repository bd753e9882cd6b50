import yaml

assert yaml.__with_libyaml__, "yaml._yaml (libyaml) not in use"
assert yaml.load("a: [1, 2]\nb: {c: d}\n", Loader=yaml.CLoader) == {"a": [1, 2], "b": {"c": "d"}}
assert yaml.dump({"x": 1}, Dumper=yaml.CDumper) == "x: 1\n"
