"""`sg.jit`: compile a Python function by tracing it.

On a call, the function runs once on symbolic placeholders (`sg.Variable(shape=..., dtype=...)`
of each array argument's shape and dtype, named after the parameter), and the graph it builds
is compiled with `sg.compile`; the compiled function is cached by the call's signature, so a
later call with the same signature runs the C without running the Python function again.

What the arguments become:
- numpy arrays and Variables holding values: dynamic, a placeholder each; the signature
  holds their shape and dtype (and the nesting, for tuples, lists and dicts of them);
- Python numbers, strings, None and any other hashable object, and the arguments named by
  `static_argnums`: static, passed to the function as they are, and part of the signature
  (so that `if n > 0:` on such an argument works; a new value traces again). Static
  arguments must be hashable;
- a symbolic Variable, or one that requires grad (sg.jit called while another transform
  traces, e.g. `sg.func.grad(sg.jit(f))`): no compile at all, the function runs on it and
  returns Variables, so that the outer transform sees the graph.

Results are new numpy arrays, nested as the function's (a tuple when it returns several);
Variables with values that the function closes over are compiled in as constants, with the
values they had when it was traced. A Python `if`, `while`, `bool()`, `float()`, `int()`,
`.item()` or `.numpy()` on a traced value raises sg.func.TracedValueError naming the argument.
Each retrace logs (logger "symgrad", level INFO) which argument's shape or dtype changed.

`dynamic=True`: the leading dimension of each array argument is a symbolic dimension
(symgrad.dims), so that one compiled function serves every batch size: a call with new leading
sizes runs it again without tracing or compiling. The rule, decided from the sizes of each
call (PyTorch's "duck sizing", for leading dims):
- array arguments whose leading sizes are equal share one dimension (named `b0`, `b1`, ... in
  order of first appearance): `x` of (32, 784) and `labels` of (32,) are both `b0` long, and a
  later call must give them equal sizes too;
- a leading size equal to a non-leading dimension of some argument stays static: it is a
  feature size (the 784 rows of a weight matrix that meet the 784 columns of `x`), not a batch;
- 0-d arrays have no leading dimension.
A call whose sizes follow another pattern (two arguments that shared a size no longer do, a
non-leading dimension or a dtype changed, a batch that equals a feature size) traces again,
once per pattern, and logs why."""
from __future__ import annotations

import functools
import inspect
import logging

from typing import Callable, Sequence

import numpy as np

from symgrad.func.common import traced
from symgrad.func.pytree import flatten, unflatten
from symgrad.variable import Variable

log = logging.getLogger("symgrad")


def _dynamic_leaf(x) -> bool:
    return isinstance(x, (np.ndarray, Variable))


def _traced_leaf(x) -> bool:
    """A Variable some outer transform is building a graph of."""
    return isinstance(x, Variable) and (x.requires_grad or (x._value is None and not x.is_concrete))


class _Entry:
    __slots__ = ("compiled", "out_tree", "consts", "single", "key")

    def __init__(self, compiled, out_tree, consts, single, key):
        self.compiled, self.out_tree, self.consts, self.single = compiled, out_tree, consts, single
        self.key = key


class Jitted:
    """A function compiled by `sg.jit`: call it as the function; `.lower(*args)` is the
    `sg.compile` object for those arguments; `.traces` counts how often the function ran.

    It pickles as its function (by reference, as pickle does functions) and its options: in
    another process the first call of each signature traces again and finds the library in
    the build cache (the graph index), or builds it."""

    def __reduce__(self):
        return _rebuild_jitted, (self.fun, self._options)

    def __init__(self, fun, static_argnums=(), backend="c", static_argnames=(), dynamic=False):
        self.fun = fun
        self.dynamic = bool(dynamic)
        self.static_argnums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        self.backend = backend
        self._cache: dict = {}
        self._fast: dict = {}      # {((shape, dtype), ...): entry} for calls on numpy arrays alone
        self._last = None
        self.traces = 0
        try:
            self._signature = inspect.signature(fun)
        except (TypeError, ValueError):
            self._signature = None
        functools.update_wrapper(self, fun)
        self._options = dict(static_argnums=static_argnums, backend=backend, static_argnames=static_argnames,
                             dynamic=self.dynamic)
        names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        if names:
            params = [p.name for p in self._positional_params()]
            unknown = [n for n in names if n not in params]
            if unknown:
                raise ValueError(f"sg.jit({self.__name__}): static_argnames {unknown} are not among the "
                                 f"positional parameters {params}")
            self.static_argnums += tuple(params.index(n) for n in names)

    def _positional_params(self):
        if self._signature is None:
            return []
        return [p for p in self._signature.parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    # --- arguments --------------------------------------------------------------------------
    def _positional(self, args, kwargs):
        if not kwargs:
            return tuple(args)
        if self._signature is None:
            raise TypeError(f"sg.jit({self.__name__}): pass the arguments positionally")
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        if bound.kwargs:
            raise TypeError(f"sg.jit({self.__name__}): keyword-only arguments are not supported "
                            f"({', '.join(bound.kwargs)})")
        return tuple(bound.args)

    def _param_name(self, k):
        params = self._positional_params()
        return params[k].name if k < len(params) else f"arg{k}"

    def _split(self, args):
        """(signature key, dynamic leaves with their names, how to rebuild the arguments)."""
        n = len(args)
        static = set()
        for a in self.static_argnums:
            if not -n <= a < n:
                raise ValueError(f"sg.jit({self.__name__}): static_argnums {self.static_argnums} out of "
                                 f"range for {n} arguments")
            static.add(a % n)
        key, dyn, plan = [], [], []
        for k, arg in enumerate(args):
            pname = self._param_name(k)
            if k in static:
                key.append(("static", _hashable(arg, pname, self.__name__)))
                plan.append(("static", arg))
                continue
            leaves, tree = flatten(arg)
            spec = []
            for j, leaf in enumerate(leaves):
                label = pname if tree.kind == "leaf" else f"{pname}[{j}]"
                if _dynamic_leaf(leaf):
                    value = leaf.value() if isinstance(leaf, Variable) else np.asarray(leaf)
                    spec.append(("array", len(dyn), value.dtype.str))    # (the shape: below)
                    dyn.append((label, k, value))
                else:
                    spec.append(("static", _hashable(leaf, label, self.__name__)))
            key.append((tree, spec))
            plan.append(("tree", tree, leaves))
        shapes = _duck_shapes([v.shape for _, _, v in dyn]) if self.dynamic else [v.shape for _, _, v in dyn]
        key = [part if part[0] == "static" else
               (part[0], tuple(s if s[0] != "array" else ("array", shapes[s[1]], s[2]) for s in part[1]))
               for part in key]
        dyn = [(label, k, value, shape) for (label, k, value), shape in zip(dyn, shapes)]
        return tuple(key), dyn, plan

    # --- tracing ------------------------------------------------------------------------------
    def _trace(self, key, dyn, plan):
        from symgrad.compile import compile as sg_compile
        places, names = [], {}
        for label, k, value, shape in dyn:
            p = Variable(shape=shape, dtype=value.dtype, name=label)
            places.append(p)
            names[id(p)] = f"argument '{label}' of {self.__name__} (shape {tuple(shape)}, {value.dtype})"
        it = iter(places)
        call = []
        for item in plan:
            if item[0] == "static":
                call.append(item[1])
            else:
                _, tree, leaves = item
                call.append(unflatten(tree, [next(it) if _dynamic_leaf(leaf) else leaf for leaf in leaves]))
        self.traces += 1
        with traced(f"sg.jit({self.__name__})", names):
            out = self.fun(*call)
        out_leaves, out_tree = flatten(out)
        outs, consts = [], {}
        for j, o in enumerate(out_leaves):
            if isinstance(o, Variable):
                outs.append(o)
            elif isinstance(o, (np.ndarray, np.generic, int, float, bool)):
                consts[j] = np.asarray(o)      # not computed from the arguments
            else:
                raise TypeError(f"sg.jit({self.__name__}): the function returned a {type(o).__name__} "
                                f"(output {j}); results must be Variables, arrays or numbers")
        single = out_tree.kind == "leaf" and len(outs) == 1      # lower(...).forward(...) is an array
        compiled = sg_compile(places, outs[0] if single else outs, wrt=[], backend=self.backend) \
            if outs else None
        return _Entry(compiled, out_tree, consts, single, key)

    def _entry(self, args):
        key, dyn, plan = self._split(args)
        entry = self._cache.get(key)
        if entry is None:
            if self._last is not None:
                log.info("sg.jit(%s): tracing again: %s", self.__name__, _why(self._last, key, self, args))
            entry = self._cache[key] = self._trace(key, dyn, plan)
        self._last = key                   # a retrace is explained against the latest call
        return entry, dyn

    # --- calls --------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        plain = not kwargs and not self.static_argnums and all(type(a) is np.ndarray for a in args)
        if plain:        # the common call, numpy arrays only: its signature is their shapes and dtypes
            fast_key = tuple((a.shape, a.dtype) for a in args)
            entry = self._fast.get(fast_key)
            if entry is not None:
                self._last = entry.key
                return self._run(entry, args)
        args = self._positional(args, kwargs)
        if any(_traced_leaf(leaf) for arg in args for leaf in flatten(arg)[0]):
            return self.fun(*args)            # inside another transform: a graph, not a compile
        entry, dyn = self._entry(args)
        if plain and len(self._fast) < FAST_KEYS:
            self._fast[fast_key] = entry
        return self._run(entry, [v for _, _, v, _ in dyn])

    def _run(self, entry, arrays):
        results = []
        if entry.compiled is not None:          # sg.compile's public call: an array, or a list
            results = entry.compiled(*arrays)
            if entry.single:
                return results
        it = iter(results)
        n = entry.out_tree.n_leaves
        leaves = [entry.consts[j].copy() if j in entry.consts else next(it) for j in range(n)]
        return unflatten(entry.out_tree, leaves)

    def lower(self, *args, **kwargs):
        """The `sg.compile` object (`.forward.source`, `.forward.path`, ...) that calls with
        these arguments run; compiled (and cached) now if it was not yet."""
        entry, _ = self._entry(self._positional(args, kwargs))
        if entry.compiled is None:
            raise ValueError(f"sg.jit({self.__name__}): the function computes nothing from its arguments, "
                             f"so there is nothing compiled")
        return entry.compiled

    def __repr__(self):
        return f"<sg.jit of {self.__name__}: {len(self._cache)} compiled signature(s)>"


FAST_KEYS = 1024          # exact call signatures remembered for the numpy-arrays-only fast path


def _duck_shapes(shapes) -> list:
    """The shapes a dynamic trace gives its array arguments (see the module's docstring): each
    leading size a symbolic dimension shared by the arguments of equal leading size, unless it
    equals a non-leading dimension of some argument (a feature size, kept)."""
    from symgrad.dims import Dim
    features = {n for s in shapes for n in s[1:]}
    names: dict = {}
    out = []
    for s in shapes:
        if not s or s[0] in features:
            out.append(tuple(s))
            continue
        if s[0] not in names:
            names[s[0]] = Dim.named(f"b{len(names)}")
        out.append((names[s[0]],) + tuple(s[1:]))
    return out


def _hashable(value, who, fname):
    try:
        hash(value)
    except TypeError:
        raise TypeError(f"sg.jit({fname}): the static argument {who!r} is a {type(value).__name__}, which is "
                        f"not hashable; static arguments key the cache of compiled functions") from None
    return (type(value).__name__, value)


def _why(old, new, jitted, args) -> str:
    """Which argument differs between two signatures, in words."""
    reasons = []
    for k, (a, b) in enumerate(zip(old, new)):
        if a == b:
            continue
        name = jitted._param_name(k)
        if a[0] == "static" or b[0] == "static":
            reasons.append(f"static argument '{name}' changed from {a[1][1]!r} to {b[1][1]!r}"
                           if a[0] == b[0] == "static" else f"argument '{name}' changed kind")
            continue
        if a[0] != b[0] or len(a[1]) != len(b[1]):
            reasons.append(f"argument '{name}' changed its nesting")
            continue
        for j, (sa, sb) in enumerate(zip(a[1], b[1])):
            if sa == sb:
                continue
            label = name if b[0].kind == "leaf" else f"{name}[{j}]"
            if sa[0] == sb[0] == "array":
                if sa[1] != sb[1]:
                    reasons.append(f"argument '{label}' changed shape from {sa[1]} to {sb[1]}")
                if sa[2] != sb[2]:
                    reasons.append(f"argument '{label}' changed dtype from {np.dtype(sa[2])} to "
                                   f"{np.dtype(sb[2])}")
            else:
                reasons.append(f"argument '{label}' changed from {sa[1:]} to {sb[1:]}")
    if len(old) != len(new):
        reasons.append(f"the number of arguments changed from {len(old)} to {len(new)}")
    return "; ".join(reasons) or "a new signature"


def jit(fun: Callable | None = None, static_argnums: int | Sequence[int] = (), dynamic: bool = False,
        backend: str = "c",
        static_argnames: str | Sequence[str] = ()) -> Jitted | Callable[[Callable], Jitted]:
    """Compile the Python function `fun` by tracing it, as JAX's `jax.jit`: returns a `Jitted`.

    Each call with new shapes, dtypes or static values traces `fun` on symbolic Variables
    and compiles the graph (see the module's docstring); later calls with the same ones run
    the compiled code. Also `@sg.jit` and `@sg.jit(static_argnums=...)`. `static_argnums`
    and `static_argnames` name the static parameters (hashable values that key the cache,
    as JAX's); `dynamic=True` makes the leading dimension of each array argument symbolic, so
    that new batch sizes run the same compiled code (the rule, duck sizing, is in the module's
    docstring); `backend` is sg.compile's."""
    if fun is None:
        return lambda f: jit(f, static_argnums=static_argnums, dynamic=dynamic, backend=backend,
                             static_argnames=static_argnames)
    if not callable(fun):
        raise TypeError(f"sg.jit: expected a function, got {type(fun).__name__}")
    return Jitted(fun, static_argnums, backend, static_argnames, dynamic)


def _rebuild_jitted(fun, options):
    return Jitted(fun, **options)
