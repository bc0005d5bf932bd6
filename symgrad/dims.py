"""Symbolic dimensions: a size known only when a compiled function is called.

`Dim` is an `int` (so that every shape rule, pass and planner computes with it unchanged) that
also carries an expression over named sizes: a polynomial with integer coefficients whose
atoms are names (`batch`) or quotients and remainders of such polynomials. Arithmetic with
ints or Dims gives a Dim (or a plain int when the names cancel: `(batch*784) // batch`).

The int value is a *hint*: a distinct large prime per name, so that `d == 1`, `d == 784` and
`d % 8 == 0` are false and a decision made on the hint takes the general path. Equality of two
Dims is by expression, never by hint; a Dim never equals a plain int. Users see the names
(`batch`, `batch*784`); the code generator renders the expression as C
(symgrad.codegen.render.c_text); `evaluate` gives the value under bound sizes.

Where a hint could reach a result silently (`float(d)`), a Dim raises instead."""
from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass

import numpy as np

_HINTS: dict[str, int] = {}


def _primes_from(n: int):
    while True:
        if n > 1 and all(n % p for p in range(2, int(n ** 0.5) + 1)):
            yield n
        n += 1


_NEXT_HINT = _primes_from(10007)


@contextlib.contextmanager
def hints_from(start: int):
    """Within the block, names not seen before take hints from the primes at `start` on (a
    test compiles one graph under two sets of hints: text that differs shows a hint baked in)."""
    global _NEXT_HINT
    saved, saved_next = dict(_HINTS), _NEXT_HINT
    _HINTS.clear()
    _NEXT_HINT = _primes_from(start)
    try:
        yield
    finally:
        _HINTS.clear()
        _HINTS.update(saved)
        _NEXT_HINT = saved_next


def hint_of(name: str) -> int:
    """The hint of a named size: a prime of its own, the same all along this process."""
    if name not in _HINTS:
        _HINTS[name] = next(_NEXT_HINT)
    return _HINTS[name]


@dataclass(frozen=True)
class Quotient:
    """An atom `num // den` (op "//") or `num % den` (op "%") that does not simplify."""
    op: str
    num: tuple      # terms
    den: tuple      # terms

    @property
    def key(self) -> str:
        return f"{_operand_text(self.num)}{self.op}{_operand_text(self.den)}"


def _atom_key(a) -> str:
    return a if isinstance(a, str) else a.key


def _norm(poly: dict):
    """A polynomial {monomial: coefficient} as a Dim, or an int when it has no atoms."""
    items = [(m, c) for m, c in poly.items() if c]
    if all(not m for m, _ in items):
        return sum(c for _, c in items)
    terms = tuple(sorted(items, key=lambda mc: (not mc[0], len(mc[0]), [_atom_key(a) for a in mc[0]])))
    return Dim._make(terms)


def _poly(x) -> dict:
    if isinstance(x, Dim):
        return dict(x.terms)
    return {(): int(x)}


def _mono_mul(a: tuple, b: tuple) -> tuple:
    return tuple(sorted(a + b, key=_atom_key))


def _mul(p: dict, q: dict) -> dict:
    out: dict = {}
    for (m1, c1), (m2, c2) in itertools.product(p.items(), q.items()):
        m = _mono_mul(m1, m2)
        out[m] = out.get(m, 0) + c1 * c2
    return out


def _add(p: dict, q: dict, sign: int = 1) -> dict:
    out = dict(p)
    for m, c in q.items():
        out[m] = out.get(m, 0) + sign * c
    return out


def _evaluate_terms(terms, env) -> int:
    total = 0
    for mono, c in terms:
        v = c
        for a in mono:
            v *= env_value(a, env)
        total += v
    return total


def env_value(atom, env) -> int:
    if isinstance(atom, str):
        if env is None:
            return hint_of(atom)
        try:
            return env[atom]
        except KeyError:
            raise KeyError(f"no size bound for the dimension {atom!r}") from None
    num, den = _evaluate_terms(atom.num, env), _evaluate_terms(atom.den, env)
    if den == 0:
        return 0
    return num // den if atom.op == "//" else num % den


def _exact_division(p: dict, q: dict):
    """p / q when q is one monomial that divides every term of p exactly, else None."""
    if len(q) != 1:
        return None
    (qm, qc), = q.items()
    out = {}
    for m, c in p.items():
        rest = list(m)
        for a in qm:
            if a not in rest:
                return None
            rest.remove(a)
        if c % qc:
            return None
        out[tuple(rest)] = c // qc
    return out


def _operand_text(terms) -> str:
    """Terms as an operand of // or %: a name or a number as is, anything else parenthesised."""
    text = _text(terms) if terms else "0"
    return text if text.isidentifier() or text.isdigit() else f"({text})"


def _text(terms) -> str:
    parts = []
    for mono, c in terms:
        alone = len(mono) == 1 and abs(c) == 1        # (a quotient in a product is parenthesised)
        names = [a if isinstance(a, str) else a.key if alone else f"({a.key})" for a in mono]
        if not names:
            body = str(abs(c))
        else:
            body = "*".join(names + ([str(abs(c))] if abs(c) != 1 else []))
        parts.append(("-" if c < 0 else "+") + body)
    text = " ".join(p[0] + " " + p[1:] for p in parts)
    return text[2:] if text.startswith("+ ") else "-" + text[2:]


def _coerce(x):
    """`x` as an int or Dim for size arithmetic, or None (a float: hint arithmetic)."""
    if isinstance(x, int):
        return x
    if isinstance(x, np.integer):
        return int(x)
    return None


def _size_operator(combine, reflected: bool = False):
    """A binary operator of Dim: `combine(a, b)` of the two operands as sizes, the Dim first
    unless `reflected`; an operand that is not an integer goes to Dim._not_a_size."""
    def operator(self, other):
        o = _coerce(other)
        if o is None:
            return self._not_a_size(other)
        return combine(o, self) if reflected else combine(self, o)
    return operator


class Dim(int):
    """A size that is an expression over named dimensions; see the module's docstring."""

    terms: tuple

    @classmethod
    def _make(cls, terms):
        self = int.__new__(cls, _evaluate_terms(terms, None))
        self.terms = terms
        return self

    @classmethod
    def named(cls, name: str) -> "Dim":
        """The dimension called `name` (a Python identifier)."""
        if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
            raise ValueError(f"a dimension's name must be an ASCII identifier (like 'batch'), got {name!r}")
        return cls._make((((name,), 1),))

    # --- facts -------------------------------------------------------------------------------
    @property
    def hint(self) -> int:
        return int.__int__(self)

    def names(self) -> set:
        """The dimension names this size depends on."""
        out: set = set()
        for mono, _ in self.terms:
            for a in mono:
                out |= {a} if isinstance(a, str) else _names(a.num) | _names(a.den)
        return out

    @property
    def name(self):
        """The name when this is a plain named dimension, else None."""
        if len(self.terms) == 1 and self.terms[0][1] == 1 and len(self.terms[0][0]) == 1 \
                and isinstance(self.terms[0][0][0], str):
            return self.terms[0][0][0]
        return None

    def evaluate(self, env: dict) -> int:
        """The value under `env` ({name: size})."""
        return _evaluate_terms(self.terms, env)

    # --- arithmetic ---------------------------------------------------------------------------
    __add__ = __radd__ = _size_operator(lambda a, b: _norm(_add(_poly(a), _poly(b))))
    __sub__ = _size_operator(lambda a, b: _norm(_add(_poly(a), _poly(b), -1)))
    __rsub__ = _size_operator(lambda a, b: _norm(_add(_poly(a), _poly(b), -1)), reflected=True)
    __mul__ = __rmul__ = _size_operator(lambda a, b: _norm(_mul(_poly(a), _poly(b))))

    def __neg__(self):
        return _norm({m: -c for m, c in self.terms})

    def __pos__(self):
        return self

    def __abs__(self):
        return -self if int.__lt__(self, 0) else self

    @staticmethod
    def _divide(a, b, op):
        p, q = _poly(a), _poly(b)
        if q == {(): 1}:
            return _norm(p) if op == "//" else 0
        exact = _exact_division(p, q)
        if exact is not None:
            return _norm(exact) if op == "//" else 0
        return Dim._make((((Quotient(op, _terms(p), _terms(q)),), 1),))

    __floordiv__ = _size_operator(lambda a, b: Dim._divide(a, b, "//"))
    __rfloordiv__ = _size_operator(lambda a, b: Dim._divide(a, b, "//"), reflected=True)
    __mod__ = _size_operator(lambda a, b: Dim._divide(a, b, "%"))
    __rmod__ = _size_operator(lambda a, b: Dim._divide(a, b, "%"), reflected=True)

    def _not_a_size(self, other):
        """Arithmetic with something that is not an integer: a number would see the placeholder
        (the hint) and give a wrong value silently, so it raises; anything else (a Variable)
        answers with its own reflected operator."""
        if isinstance(other, (float, complex, np.floating, np.complexfloating)):
            raise TypeError(f"the size {self} is a symbolic dimension: arithmetic with the number "
                            f"{other!r} has no value until the compiled function is called (a "
                            f"Variable divided by the size, x / x.shape[0], or x.mean(), is right)")
        return NotImplemented

    def _no_quotient(self, text):
        raise TypeError(f"the size {self} is a symbolic dimension: {text} has no value until the "
                        f"compiled function is called (use // for a size, or divide a Variable by "
                        f"the size)")

    def __truediv__(self, other):
        if isinstance(other, (int, np.integer)):
            self._no_quotient(f"{self} / {other}")
        return self._not_a_size(other)

    def __rtruediv__(self, other):
        if isinstance(other, (int, np.integer)):
            self._no_quotient(f"{other} / {self}")
        return self._not_a_size(other)

    def __pow__(self, other, modulo=None):
        if modulo is None and isinstance(other, (int, np.integer)) and not isinstance(other, Dim) \
                and other >= 0:
            out = 1
            for _ in range(int(other)):
                out = out * self
            return out
        raise TypeError(f"the size {self} is a symbolic dimension: {self} ** {other!r} is not a size")

    def __float__(self):
        raise TypeError(f"the size {self} is a symbolic dimension: it has no value until the "
                        f"compiled function is called")

    # --- comparison: by expression -------------------------------------------------------------
    def __eq__(self, other):
        if isinstance(other, Dim):
            return self.terms == other.terms
        if isinstance(other, int):
            return False
        return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        return hash(("Dim", self.terms))

    # --- text ----------------------------------------------------------------------------------
    def __repr__(self):
        return _text(self.terms)

    __str__ = __repr__

    def __format__(self, spec):
        return format(str(self), spec) if not spec or spec[-1] not in "dxXobn" else format(self.hint, spec)

    def __reduce__(self):
        return Dim._make, (self.terms,)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def _terms(p: dict) -> tuple:
    d = _norm(p)
    return d.terms if isinstance(d, Dim) else (((), d),) if d else ()


def _names(terms) -> set:
    return Dim._make(terms).names() if terms and any(m for m, _ in terms) else set()


# --- helpers for shapes ----------------------------------------------------------------------------

def symbolic_shape(shape) -> bool:
    """Whether a shape has a symbolic dimension."""
    return any(isinstance(n, Dim) for n in shape)


def names_in(*shapes) -> list:
    """The dimension names in `shapes`, sorted."""
    out: set = set()
    for shape in shapes:
        for n in shape:
            if isinstance(n, Dim):
                out |= n.names()
    return sorted(out)


def has_dims(obj) -> bool:
    """Whether `obj` (a size, shape or attributes: nested tuples, lists and dicts) holds a Dim."""
    if isinstance(obj, Dim):
        return True
    if isinstance(obj, (tuple, list)):
        return any(has_dims(o) for o in obj)
    if isinstance(obj, dict):
        return any(has_dims(o) for o in obj.values())
    return False


def specialise(obj, env: dict):
    """`obj` (a size, a shape, attributes: nested tuples, lists and dicts) with every Dim
    replaced by its value under `env`."""
    if isinstance(obj, Dim):
        return obj.evaluate(env)
    if isinstance(obj, tuple):
        return type(obj)(specialise(o, env) for o in obj) if type(obj) is tuple else \
            type(obj)(tuple(specialise(o, env) for o in obj))
    if isinstance(obj, list):
        return [specialise(o, env) for o in obj]
    if isinstance(obj, dict):
        return {k: specialise(v, env) for k, v in obj.items()}
    return obj


def round_up_terms(x, step: int):
    """`x` with each coefficient of its polynomial rounded up to a multiple of `step`: at least
    `x` for every size (each atom is >= 0), and a multiple of `step` at every size."""
    if not isinstance(x, Dim):
        return -(-x // step) * step
    return _norm({m: -(-c // step) * step for m, c in x.terms})


def provably_at_least(a, b) -> bool:
    """Whether size `a` >= size `b` for every value of the names (each >= 0): their difference
    has no negative coefficient (quotients count as atoms >= 0)."""
    if not isinstance(a, Dim) and not isinstance(b, Dim):
        return a >= b
    diff = _poly(a)
    diff = _add(diff, _poly(b), -1)
    return all(c >= 0 for c in diff.values())


def bind(shapes, arrays_shapes, who) -> dict:
    """The sizes of the names in `shapes` (declared shapes) from the shapes of the given arrays
    (`arrays_shapes`, in the same order; `who` names each): {name: size}. A name seen with two
    sizes is a ValueError naming both arguments; a compound size (`batch*2`) is checked after."""
    env: dict = {}
    seen: dict = {}
    for spec, got, name in zip(shapes, arrays_shapes, who):
        if len(spec) != len(got):
            continue        # (the caller's own check reports a rank mismatch)
        for d, n in zip(spec, got):
            dim_name = d.name if isinstance(d, Dim) else None
            if dim_name is None:
                continue
            if dim_name in env and env[dim_name] != n:
                raise ValueError(f"{seen[dim_name]} has {dim_name}={env[dim_name]} but {name} has "
                                 f"{dim_name}={n}")
            env.setdefault(dim_name, n)
            seen.setdefault(dim_name, name)
    return env


def empty_reductions(outputs, args) -> list:
    """[(size, what)]: the symbolic sizes that a max, min, argmax or argmin of the graph reduces
    over (a max or min: where its value is seen); such a reduction of nothing has no value, so
    a call where one is 0 is an error, as PyTorch's. A max only ever broadcast back over that
    dim (softmax's) is never read when the dim is empty, and is no error."""
    from symgrad.graph import toposort
    given = {id(a) for a in args}
    order = toposort(outputs, lambda v: id(v) in given)
    users: dict = {}
    for v in order:
        for i in v.inputs:
            users.setdefault(id(i), []).append(v)
    results = {id(o) for o in outputs}

    def empty_with(shape, n) -> bool:   # is a value of `shape` empty when n is 0?
        return any(isinstance(s, Dim) and s % n == 0 for s in shape)

    def seen(v, n) -> bool:
        """Whether v's value reaches a result through nodes that are not empty when n is 0."""
        stack, visited = [v], set()
        while stack:
            u = stack.pop()
            if id(u) in results:
                return True
            for w in users.get(id(u), ()):
                if id(w) not in visited and not empty_with(w.shape, n):
                    visited.add(id(w))
                    stack.append(w)
        return False
    out = {}
    for v in order:
        if v.op in ("max", "min", "argmax", "argmin") and v.inputs:
            axes = v.attrs.get("axes", (v.attrs.get("axis"),))
            for a in axes:
                n = v.inputs[0].shape[a] if a is not None else None
                if isinstance(n, Dim) and (v.op.startswith("arg") or seen(v, n)):
                    out.setdefault(n, f"a {v.op} of shape {v.inputs[0].shape} along dim {a}")
    return list(out.items())
