import markupsafe
from markupsafe import _speedups

assert markupsafe._escape_inner is _speedups._escape_inner, "C speedups not in use"
assert str(markupsafe.escape("<a href='x'>&</a>")) == "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
