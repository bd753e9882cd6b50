import pandas
from pandas._libs import groupby as libgroupby, hashtable

frame = pandas.DataFrame({"key": ["a", "b", "a", "c", "b"], "value": [1, 2, 3, 4, 5]})
sums = frame.groupby("key")["value"].sum()
assert sums.to_dict() == {"a": 4, "b": 7, "c": 4}, sums
assert hashtable.__file__ and libgroupby.__file__
dates = pandas.date_range("2024-01-01", periods=3, freq="D", tz="Europe/Paris")
assert str(dates[-1].date()) == "2024-01-03"
assert frame.pivot_table(index="key", values="value", aggfunc="mean").loc["a", "value"] == 2
