"""The kernel IR: what a loop nest computes, as data that passes read and rewrite and that
the templates render (C and CUDA alike). Nothing here is C text.

Expressions are small immutable trees, compared by structure:
  Idx(name)                 a loop variable
  Lit(value, ctype)         a literal
  Affine(terms, const)      sum of coefficient * atom plus a constant: buffer offsets; its atoms
                            are loop variables or other integer expressions
  Load(buf, index)          buffer[index]
  Call(op, args, ...)       a registry op on its operands (its C expression is the op's facet)
  Select(cond, a, b)        cond ? a : b
  Bin(op, a, b)             integer and boolean arithmetic of indices (+ - * / % < <= >= == &&)
  Cast(ctype, x)            a conversion
  Init(op, ctype)           the initial value of a reduction's accumulator
  Ref(let)                  the value of a named local (`Let`), computed once per iteration

A `Kernel` is one loop nest: its loops (variable, extent), how many of them index the output
(`outer`; the rest are reduced), its locals, and what it stores or accumulates into which
`Buffer`s (arguments, captured constants, outputs, scratch temporaries); the kernel passes
(symgrad/codegen/kernel_passes.py) merge and annotate them. A `Schedule` is a function's
buffers and kernels in order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


class Expr:
    __slots__ = ()

    def __add__(self, other):
        return affine(self) + other

    def __mul__(self, k: int):
        return affine(self) * k


@dataclass(frozen=True)
class Idx(Expr):
    name: str


@dataclass(frozen=True)
class Lit(Expr):
    value: object
    ctype: str


@dataclass(frozen=True)
class Load(Expr):
    buf: object             # a schedule Buffer, compared by identity
    index: Expr


@dataclass(frozen=True)
class Call(Expr):
    op: str
    args: tuple
    ctype: str
    in_ctype: str
    attrs: tuple = ()       # (name, value) pairs, in the registry's order

    @property
    def attr_dict(self) -> dict:
        return dict(self.attrs)


@dataclass(frozen=True)
class Select(Expr):
    cond: Expr
    a: Expr
    b: Expr


@dataclass(frozen=True)
class Bin(Expr):
    op: str
    a: Expr
    b: Expr


@dataclass(frozen=True)
class Cast(Expr):
    ctype: str
    x: Expr


@dataclass(frozen=True)
class Init(Expr):
    op: str
    ctype: str


@dataclass(eq=False)
class Let:
    """A named local of a loop body. Its name is data: merging nests renames by assignment."""
    ctype: str
    name: str
    expr: Expr


@dataclass(frozen=True, eq=False)
class Ref(Expr):
    let: Let

    def __eq__(self, other):
        return isinstance(other, Ref) and other.let is self.let

    def __hash__(self):
        return id(self.let)


@dataclass(frozen=True, eq=False)
class Affine(Expr):
    """sum(coefficient * atom) + const, normalised: atoms appear once, in order of first
    appearance (the order they are written in), with non-zero coefficients. Equal forms are
    equal whatever the order of their terms."""
    terms: tuple = ()
    const: int = 0

    def __eq__(self, other):
        return isinstance(other, Affine) and self.const == other.const and \
            len(self.terms) == len(other.terms) and dict(self.terms) == dict(other.terms)

    def __hash__(self):
        return hash((frozenset(self.terms), self.const))

    def __add__(self, other):
        other = affine(other)
        return _normal(self.terms + other.terms, self.const + other.const)

    __radd__ = __add__

    def __sub__(self, other):
        return self + affine(other) * -1

    def __mul__(self, k: int):
        return _normal(tuple((atom, c * k) for atom, c in self.terms), self.const * k)

    @property
    def is_const(self) -> bool:
        return not self.terms

    def coefficient(self, atom) -> int:
        return sum(c for a, c in self.terms if a == atom)

    def __repr__(self):
        parts = [f"{c}*{a}" for a, c in self.terms]
        parts += [str(self.const)] if self.const or not self.terms else []
        return "Affine(" + " + ".join(parts) + ")"


ZERO = Affine()


def _normal(terms, const) -> Affine:
    merged: dict = {}
    for atom, c in terms:
        merged[atom] = merged.get(atom, 0) + c
    const = const if isinstance(const, int) else int(const)      # (a Dim stays one: symgrad.dims)
    return Affine(tuple((a, c) for a, c in merged.items() if c), const)


def affine(x) -> Affine:
    """`x` (an int, a loop variable, an affine form or another integer expression) as an
    affine form."""
    if isinstance(x, Affine):
        return x
    if isinstance(x, int):
        return Affine((), x)
    if isinstance(x, Lit) and isinstance(x.value, int):
        return Affine((), x.value)
    return Affine(((x, 1),), 0)


def is_zero(x) -> bool:
    return isinstance(x, Affine) and x.is_const and x.const == 0 or isinstance(x, int) and x == 0


def children(e: Expr) -> tuple:
    """The expressions `e` is made of (a Ref's let is not looked into)."""
    if isinstance(e, Affine):
        return tuple(a for a, _ in e.terms)
    if isinstance(e, Load):
        return (e.index,)
    if isinstance(e, Call):
        return e.args
    if isinstance(e, Select):
        return (e.cond, e.a, e.b)
    if isinstance(e, Bin):
        return (e.a, e.b)
    if isinstance(e, Cast):
        return (e.x,)
    return ()


def walk(*exprs):
    """Every sub-expression of `exprs`, each once, not looking through Refs."""
    stack, seen = list(exprs), set()
    while stack:
        e = stack.pop()
        if not isinstance(e, Expr) or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack.extend(children(e))


def loads(*exprs) -> list:
    return [e for e in walk(*exprs) if isinstance(e, Load)]


def loop_vars(*exprs) -> set:
    """The names of the loop variables `exprs` use."""
    return {e.name for e in walk(*exprs) if isinstance(e, Idx)}


def substitute(e, replace):
    """`e` with each sub-expression `s` for which `replace(s)` is not None replaced by it."""
    new = replace(e)
    if new is not None:
        return new
    if isinstance(e, Affine):
        out = affine(e.const)
        for atom, c in e.terms:
            out = out + affine(substitute(atom, replace)) * c
        return out
    if isinstance(e, Load):
        return Load(e.buf, substitute(e.index, replace))
    if isinstance(e, Call):
        return Call(e.op, tuple(substitute(a, replace) for a in e.args), e.ctype, e.in_ctype, e.attrs)
    if isinstance(e, Select):
        return Select(*(substitute(x, replace) for x in (e.cond, e.a, e.b)))
    if isinstance(e, Bin):
        return Bin(e.op, substitute(e.a, replace), substitute(e.b, replace))
    if isinstance(e, Cast):
        return Cast(e.ctype, substitute(e.x, replace))
    return e


# --- kernels: loop nests over buffers ----------------------------------------------------------

@dataclass(eq=False)
class Buffer:
    name: str
    node: object            # the graph Node it holds (codegen.ir)
    kind: str              # arg | const | out | tmp
    ctype: str
    size: int
    position: int = -1     # argument/output position; scratch offset for tmp
    const: bool = False


@dataclass
class Kernel:
    kind: str                       # map | reduce | argreduce | matmul
    comment: str
    out: Buffer
    loops: list = field(default_factory=list)     # (var, extent)
    outer: int = 0                  # loops that index the output (the rest are reduced)
    lets: list = field(default_factory=list)      # [Let]: the body's named locals, in order
    value: object = None            # the expression (kernel IR) stored (map) or accumulated
    out_index: object = ZERO        # where, in the output (an Affine)
    reduce_op: str = ""
    acc_ctype: str = ""
    init: object = None             # the accumulator's initial value (an Init)
    extra: dict = field(default_factory=dict)

    @property
    def work(self) -> int:
        return math.prod(n for _, n in self.loops)


@dataclass
class Schedule:
    args: list
    consts: list
    outs: list
    tmps: list
    kernels: list
    scratch_bytes: int
    updates: list = field(default_factory=list)   # [(node, argument Buffer)]: written over it
