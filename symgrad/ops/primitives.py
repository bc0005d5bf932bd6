"""Every primitive, registered: importing this module imports each family of ops. What is
derived from the whole registry (the libm names generated code calls, the vector-math
declarations) is read from here, so that no family can be missing from it."""
from symgrad.ops import custom, elementwise, gather, linalg, reduce, shape  # noqa: F401  (they register)
from symgrad.ops.registry import OPS, libm_calls, vector_math

__all__ = ["OPS", "libm_calls", "vector_math"]
