import requests

prepared = requests.Request("GET", "http://localhost/path", params={"q": "a b"}).prepare()
assert prepared.url == "http://localhost/path?q=a+b", prepared.url
assert requests.utils.quote("a b") == "a%20b"
