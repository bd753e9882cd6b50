from ._core import combine

__all__ = ["combine"]
