"""The op registry: one entry per primitive, holding every facet of it.

An `Op` knows its shape/dtype rule (`infer`), how to compute it with numpy (`impl`), its
pullback (`vjp`, written with the graph builders of `symgrad.ops.builders`, so that gradients
are graphs and can be differentiated again), and for elementwise ops its C expression (`c`, a
jinja snippet that `symgrad.ops.c_code` renders), the libm functions that expression calls
(`libm`) and whether the front end gets a public function for it (`public`). The code
generators walk the same entries (`kind` tells them which lowering applies), and
tests/test_registry.py checks every facet of every entry, so that a missing one fails there
rather than in a user's compile.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

OPS: dict[str, "Op"] = {}

# How the code generators lower each kind of op; only elementwise ops have a C expression
# of their own (the others are loop nests, index arithmetic or library calls in the templates).
KINDS = ("elementwise", "reduce", "argreduce", "matmul", "reshape", "layout", "source", "gather",
         "scatter")

# The public functions an elementwise op can ask for: arguments promoted as PyTorch does, and
# for "float" integers become float32 first (exp, log, ...).
PUBLIC = ("", "promote", "float")


class Libm(NamedTuple):
    """A function of C's math library: how many arguments it takes, whether glibc's vector
    math library (libmvec) has SIMD variants of it that the templates declare, so that loops
    calling it vectorise (sqrt, fabs and floor are single instructions already), and `own`:
    the float function symgrad defines in its helpers (templates/c/helpers.h.j2,
    cuda/helpers.cuh.j2) and calls instead of libm's."""
    arity: int
    vector: bool = False
    own: str = ""


# Every libm function an op's C expression may call, by its double name (the float variant
# is the name with an `f`: expf). An op names the ones it calls in its `libm` facet.
LIBM = {
    "exp": Libm(1, vector=True, own="sg_expf"), "log": Libm(1, vector=True), "sin": Libm(1, vector=True),
    "cos": Libm(1, vector=True), "tanh": Libm(1, vector=True), "pow": Libm(2, vector=True),
    "log1p": Libm(1, vector=True), "erf": Libm(1, vector=True),
    "sqrt": Libm(1), "fabs": Libm(1), "floor": Libm(1), "ceil": Libm(1), "fmod": Libm(2),
}


@dataclass(eq=False)
class Op:
    name: str
    kind: str                      # one of KINDS
    infer: Callable                # (inputs, **attrs) -> (shape, dtype)
    impl: Callable                 # (*arrays, **attrs) -> ndarray
    vjp: Callable | None = None    # (g, node, needs) -> tuple of cotangents (Variable or None)
    grad_name: str = ""            # PyTorch's name for the grad_fn, without "Backward0"
    attrs: tuple = field(default=())  # attribute names, in order, for printing and hashing
    c: str | None = None           # elementwise: the C expression, a jinja snippet (see c_code)
    libm: tuple = field(default=())   # the libm functions `c` calls, double names ("exp",)
    arity: int | None = None       # how many inputs; None for any number (concat)
    public: str = ""               # one of PUBLIC: the public function made from this entry
    doc: str = ""                  # that public function's docstring
    # the pullback runs code held in the attributes (a user's backward): the graph alone does
    # not say what the gradient is, so sg.compile's record (symgrad.compile_record) is not used
    user_vjp: bool = False

    @property
    def differentiable(self) -> bool:
        return self.vjp is not None


def register(op: Op) -> Op:
    """Add `op` to the registry. Facets that can be checked without running anything are
    checked here, at import, so that a malformed entry never reaches a compile."""
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} registered twice")
    if op.kind not in KINDS:
        raise ValueError(f"op {op.name!r}: kind {op.kind!r} is not one of {KINDS}")
    if (op.c is not None) != (op.kind == "elementwise"):
        raise ValueError(f"op {op.name!r}: an elementwise op needs a C expression (c=...), "
                         f"and only an elementwise op has one")
    unknown = [name for name in op.libm if name not in LIBM]
    if unknown:
        raise ValueError(f"op {op.name!r} calls libm functions {unknown} that LIBM does not describe")
    if op.public not in PUBLIC or (op.public and (op.kind != "elementwise" or op.arity not in (1, 2))):
        raise ValueError(f"op {op.name!r}: public={op.public!r} needs an elementwise op of 1 or 2 "
                         f"inputs and one of {PUBLIC}")
    if not op.grad_name:
        op.grad_name = "".join(p.capitalize() for p in op.name.split("_"))
    OPS[op.name] = op
    return op


def libm_calls() -> list[str]:
    """The libm functions the registered ops call, double names then float ones: names a
    user's Variable must not take in generated code."""
    names = sorted({name for op in OPS.values() for name in op.libm})
    return names + [name + "f" for name in names]


def vector_math() -> list[tuple[str, int]]:
    """(double name, arity) of the libm functions that registered ops call and that libmvec
    vectorises: what templates/c/helpers.h.j2 declares as SIMD functions."""
    names = sorted({name for op in OPS.values() for name in op.libm if LIBM[name].vector})
    return [(name, LIBM[name].arity) for name in names]
