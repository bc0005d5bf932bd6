"""Primitive ops, one module per family; importing this package fills the registry."""
from symgrad.ops.registry import OPS, Op, register
from symgrad.ops import elementwise, reduce, linalg, shape  # noqa: F401  (they register)

__all__ = ["OPS", "Op", "register"]
