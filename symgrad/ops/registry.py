"""The op registry: one entry per primitive, holding every facet of it.

An `Op` knows its shape/dtype rule (`infer`), how to compute it with numpy (`impl`),
and its pullback (`vjp`), written as graph construction so that gradients are graphs
and can be differentiated again. The code generators walk the same entries (`kind`
tells them which lowering applies). Composite functions (mean, softmax, the losses) are
built from these primitives in `symgrad.functional`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

OPS: dict[str, "Op"] = {}


@dataclass(eq=False)
class Op:
    name: str
    kind: str                      # elementwise | reduce | argreduce | matmul | reshape | layout | source
    infer: Callable                # (inputs, **attrs) -> (shape, dtype)
    impl: Callable                 # (*arrays, **attrs) -> ndarray
    vjp: Callable | None = None    # (g, node, needs) -> tuple of cotangents (Variable or None)
    grad_name: str = ""            # PyTorch's name for the grad_fn, without "Backward0"
    attrs: tuple = field(default=())  # attribute names, in order, for printing and hashing

    @property
    def differentiable(self) -> bool:
        return self.vjp is not None


def register(op: Op) -> Op:
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} registered twice")
    if not op.grad_name:
        op.grad_name = "".join(p.capitalize() for p in op.name.split("_"))
    OPS[op.name] = op
    return op
