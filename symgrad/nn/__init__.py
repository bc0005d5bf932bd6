from symgrad.nn import functional

__all__ = ["functional"]
