import rpds

m = rpds.HashTrieMap({"a": 1}).insert("b", 2)
assert sorted(m.items()) == [("a", 1), ("b", 2)]
assert rpds.List([1, 2, 3]).first == 1
