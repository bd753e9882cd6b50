# dlstatic single file: package data (importlib.resources) and distribution metadata
# (importlib.metadata) read from the tree appended to the executable. Imported only
# when someone asks, so the start-up path stays in _dlstatic_boot.
import io
import posixpath

import importlib.metadata as metadata
from importlib.abc import Traversable

from _dlstatic_boot import EXE, files, read


def _directories():
    """Every directory of the tree ("" is the root) -> its entries' names."""
    global _TREE
    if _TREE is None:
        _TREE = {"": set()}
        for rel in files():
            parts = rel.split("/")
            for depth in range(len(parts)):
                _TREE.setdefault("/".join(parts[:depth]), set()).add(parts[depth])
    return _TREE


_TREE = None


class Node(Traversable):
    """A file or directory of the tree (what importlib.resources.files() returns)."""

    def __init__(self, rel):
        self.rel = rel

    @property
    def name(self):
        return posixpath.basename(self.rel)

    def __str__(self):
        return EXE + "/" + self.rel

    def __repr__(self):
        return f"<tree file {self}>"

    def is_dir(self):
        return self.rel in _directories()

    def is_file(self):
        return self.rel in files()

    def iterdir(self):
        base = self.rel + "/" if self.rel else ""
        return (Node(base + name) for name in sorted(_directories().get(self.rel, ())))

    def joinpath(self, *descendants):
        path = posixpath.normpath(posixpath.join(self.rel, *descendants))
        return Node("" if path == "." else path)

    __truediv__ = joinpath

    def open(self, mode="r", *args, **kwargs):
        if not self.is_file():
            raise FileNotFoundError(str(self))
        data = io.BytesIO(read(self.rel))
        return data if "b" in mode else io.TextIOWrapper(data, *args, **kwargs)


class TreeDistribution(metadata.Distribution):
    """An installed distribution whose *.dist-info lies at the root of the tree."""

    def __init__(self, info):
        self.info = info

    def read_text(self, filename):
        rel = f"{self.info}/{filename}"
        return read(rel).decode("utf-8") if rel in files() else None

    read_text.__doc__ = metadata.Distribution.read_text.__doc__

    def locate_file(self, path):
        return Node(str(path))


def distributions(context):
    name = getattr(context, "name", None)
    wanted = metadata.Prepared(name).normalized if name else None
    for entry in sorted(_directories()[""]):
        if not entry.endswith(".dist-info"):
            continue
        if wanted and metadata.Prepared.normalize(entry.partition("-")[0]) != wanted:
            continue
        yield TreeDistribution(entry)
