"""The op registry and the renderer of its C facet.

The registry itself (registry.py) sits beneath the graph node, which looks ops up in it. The
primitives are registered by one module per family (elementwise, reduce, linalg, shape),
whose pullbacks build graphs with builders.py and so sit above symgrad.variable: importing
`symgrad.ops.primitives` registers them all (every module that needs the whole registry does,
symgrad.functional among them, so `import symgrad` fills it). This package does not import
them itself, so that the node can import the registry without the ops built from it."""
from symgrad.ops.registry import KINDS, LIBM, OPS, Op, libm_calls, register, vector_math
from symgrad.ops.c_code import c_expression

__all__ = ["KINDS", "LIBM", "OPS", "Op", "c_expression", "libm_calls", "register", "vector_math"]
