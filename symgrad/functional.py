"""The functions users call (`sg.exp`, `x.sum(dim=1)`, `sg.cross_entropy`, ...).

Each either records one primitive (after PyTorch's dtype promotion and argument checks)
or is a composite written with them; a composite's result is marked with PyTorch's
grad_fn name and its own inputs, so `grad_fn.next_functions` reads as it does in PyTorch
while the graph itself holds only primitives."""
from __future__ import annotations

import builtins
import functools
import math
from collections import namedtuple
from numbers import Number
from typing import Callable, Sequence

import numpy as np

from symgrad import dtypes
from symgrad.hints import Dims, DTypeLike, TensorLike
from symgrad.shapes import ShapeError, as_dim, as_shape
from symgrad.ops.primitives import OPS
from symgrad.functional_docs import attach as _attach_docs, elementwise_doc
from symgrad.dims import Dim
from symgrad.variable import Variable, apply, no_grad

# --- arguments ------------------------------------------------------------------------------


def as_variable(x, dtype=None) -> Variable:
    if isinstance(x, Variable):
        return x if dtype is None or x.dtype == dtype else cast(x, dtype)
    if isinstance(x, Number) or (isinstance(x, np.ndarray) and x.ndim == 0 and dtype is not None):
        return Variable.literal(x, dtype or dtypes.scalar_dtype(x))
    return Variable(np.asarray(x) if isinstance(x, np.ndarray) else x, dtype=dtype)


def tensor_arg(fn_name: str, arg_name: str, value, sequence=False):
    """A public function's tensor argument as a Variable (numbers, lists and arrays convert),
    or a TypeError naming the function and the argument."""
    if isinstance(value, Variable):
        return value
    if sequence:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise TypeError(f"{fn_name}(): argument '{arg_name}' must be a sequence of Variables, "
                            f"got {type(value).__name__}")
        return [tensor_arg(fn_name, f"{arg_name}[{k}]", v) for k, v in enumerate(value)]
    if value is None or isinstance(value, (str, bytes, dict, set, slice)):
        raise TypeError(f"{fn_name}(): argument '{arg_name}' must be a Variable, got "
                        f"{type(value).__name__}")
    try:
        return as_variable(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn_name}(): argument '{arg_name}' must be a Variable (or numbers or an "
                        f"array), got {type(value).__name__}: {e}") from None


def takes_tensors(fn, names, sequences=()):
    """`fn` with its arguments `names` (and the sequences of them, `sequences`) made Variables
    by `tensor_arg` first, wherever they are passed, by position or by keyword."""
    import inspect
    params = list(inspect.signature(fn).parameters)
    where = [(params.index(n), n, n in sequences) for n in tuple(names) + tuple(sequences)]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if where:
            args = list(args)
            for pos, name, seq in where:
                if pos < len(args):
                    args[pos] = tensor_arg(fn.__name__, name, args[pos], seq)
                elif name in kwargs:
                    kwargs[name] = tensor_arg(fn.__name__, name, kwargs[name], seq)
        return fn(*args, **kwargs)
    wrapper.__wrapped__ = fn
    return wrapper


def _promote(name, args, float_only=False):
    """Cast the arguments of an elementwise op to their common dtype, PyTorch's way."""
    if not args:
        raise TypeError(f"{name}: no arguments")
    # a numpy array is a tensor operand, as in PyTorch (`x + np.ones(3)`)
    args = [Variable(np.array(a)) if isinstance(a, np.ndarray) else a for a in args]
    for a in args:
        if not isinstance(a, (Variable, Number)):
            raise TypeError(f"{name}: expected a Variable or a number, got {type(a).__name__}")
    dt = _result_dtype(args)
    if float_only and not dtypes.is_float(dt):
        dt = dtypes.DEFAULT_FLOAT
    return [as_variable(a, dt) for a in args], dt


def _result_dtype(args):
    """PyTorch's promotion. Three tiers, each able only to raise the category (bool < int <
    float) of the tiers before it: tensors with dims, then 0-d tensors, then Python numbers.
    Within the top category of a tier, dtypes promote as usual: float32 with an int64 tensor
    is float32, float32 with a float64 tensor is float64."""
    tensors = {a.dtype for a in args if isinstance(a, Variable)}
    if len(tensors) == 1:       # one dtype among the tensors, whatever their dims: it tops each tier
        scalars = [dtypes.scalar_dtype(a) for a in args if not isinstance(a, Variable)]
        return dtypes.result_dtype(tensors, scalars)

    def top(ds):
        ds = list(ds)
        if not ds:
            return None
        cat = builtins.max(dtypes.category(d) for d in ds)
        return functools.reduce(np.promote_types, [d for d in ds if dtypes.category(d) == cat])

    result = top(a.dtype for a in args if isinstance(a, Variable) and a.ndim > 0)
    zero_dim = top(a.dtype for a in args if isinstance(a, Variable) and a.ndim == 0)
    if zero_dim is not None and (result is None or dtypes.category(zero_dim) > dtypes.category(result)):
        result = zero_dim
    scalars = [dtypes.scalar_dtype(a) for a in args if not isinstance(a, Variable)]
    return dtypes.result_dtype([] if result is None else [result], scalars)


def _mark(out, grad_name, inputs):
    """Show `out` in grad_fn terms as one op `grad_name` applied to `inputs`."""
    if isinstance(out, Variable) and out.op is not None and not any(out is i for i in inputs):
        out._fn = (grad_name, tuple(inputs))
    return out


def composite(grad_name):
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            out = fn(*args, **kwargs)
            flat = []
            for a in args:
                flat.extend(a if isinstance(a, (list, tuple)) else [a])
            inputs = [a for a in flat if isinstance(a, Variable)]
            _mark(out[0] if isinstance(out, tuple) else out, grad_name, inputs)
            return out
        return wrapper
    return deco


def _elementwise(op, *args, float_only=False, name=None):
    vs, _ = _promote(name or op, args, float_only)
    out = apply(op, *vs)
    for a, v in zip(args, vs):
        if v is not a and isinstance(a, Variable):      # (a cast one: the grad_fn shows the op)
            _mark(out, OPS[op].grad_name, [a if isinstance(a, Variable) else None for a in args])
            break
    return out


def cast(x: Variable, dtype: DTypeLike) -> Variable:
    dtype = dtypes.as_dtype(dtype)
    if x.dtype == dtype:
        return x
    if x._literal:
        return Variable.literal(x.value(), dtype)
    if not dtypes.is_float(dtype):
        with no_grad():         # an integer or bool result carries no gradient (PyTorch's)
            return apply("cast", x, dtype=dtype)
    return apply("cast", x, dtype=dtype)


# --- elementwise ----------------------------------------------------------------------------

def add(a: TensorLike, b: TensorLike, alpha: Number = 1) -> Variable:
    return _elementwise("add", a, b if alpha == 1 else mul(b, alpha))


def sub(a: TensorLike, b: TensorLike, alpha: Number = 1) -> Variable:
    return _elementwise("sub", a, b if alpha == 1 else mul(b, alpha))


def pow(a: TensorLike, b: TensorLike) -> Variable:
    if isinstance(a, Variable) and isinstance(b, float) and b == 0.5 and dtypes.is_float(a.dtype):
        return _mark(sqrt(a), "Pow", [a])       # PyTorch's x ** 0.5 is sqrt (-0.0 at -0.0)
    out = _elementwise("pow", a, b)
    # PyTorch's overloads: tensor ** number, tensor ** tensor, number ** tensor.
    if not isinstance(b, Variable):
        return _mark(out, "Pow", [a])
    if not isinstance(a, Variable):
        return _mark(out, "Pow2", [b])
    return _mark(out, "Pow1", [a, b])


def remainder(a: TensorLike, b: TensorLike) -> Variable:
    """a % b with the sign of b, as Python and PyTorch (`torch.remainder`)."""
    out = _elementwise("remainder", a, b)
    return _mark(out, "Remainder1" if isinstance(a, Variable) and isinstance(b, Variable) else "Remainder",
                 [v for v in (a, b) if isinstance(v, Variable)])


def fmod(a: TensorLike, b: TensorLike) -> Variable:
    """C's fmod: the remainder with the sign of a."""
    out = _elementwise("fmod", a, b)
    return _mark(out, "Fmod1" if isinstance(a, Variable) and isinstance(b, Variable) else "Fmod",
                 [v for v in (a, b) if isinstance(v, Variable)])


def floor_divide(a: TensorLike, b: TensorLike) -> Variable:
    """a // b rounded toward minus infinity (PyTorch's floor_divide); no gradient."""
    (a, b), dt = _promote("floor_divide", [a, b])
    if not dtypes.is_float(dt):
        return apply("div", a, b)          # integer div already floors
    from symgrad.ops.elementwise import floor_divide as float_floor_divide
    return float_floor_divide(a, b)


def _public_elementwise(op) -> Callable:
    """The public function of a registry entry that asks for one (`Op.public`): its arguments
    (Variables or numbers) are promoted to their common dtype as PyTorch does, and for
    `public="float"` integers become float32 first."""
    float_only = op.public == "float"
    if op.arity == 1:
        def fn(x):
            return _elementwise(op.name, x, float_only=float_only)
    else:
        def fn(a, b):
            return _elementwise(op.name, a, b, float_only=float_only)
    fn.__name__ = fn.__qualname__ = op.name
    fn.__doc__ = elementwise_doc(op.name, op.doc, op.arity, float_only)
    fn.__annotations__ = {**{p: "TensorLike" for p in ("x",) if op.arity == 1},
                          **{p: "TensorLike" for p in ("a", "b") if op.arity == 2}, "return": "Variable"}
    return fn


# One public function per elementwise entry that asks for one, made from the entry alone: a new
# op needs only its registry entry (and a line of export in symgrad/__init__.py).
ELEMENTWISE = {op.name: _public_elementwise(op) for op in OPS.values() if op.public}
globals().update(ELEMENTWISE)
# The ones this module's own composites call, bound by name for readers and linters.
(mul, div, exp, log, sqrt, abs, maximum, minimum, lt, le, gt, ge, eq, ne) = (ELEMENTWISE[n] for n in (
    "mul", "div", "exp", "log", "sqrt", "abs", "maximum", "minimum", "lt", "le", "gt", "ge", "eq", "ne"))


def where(condition: TensorLike, x: TensorLike, y: TensorLike) -> Variable:
    cond = as_variable(condition)
    if cond.dtype != dtypes.bool_:
        raise TypeError(f"where: condition must be bool, got {cond.dtype}")
    (a, b), _ = _promote("where", [x, y])
    out = apply("where", cond, a, b)
    # PyTorch's WhereBackward0 lists the two branches only: the condition carries no gradient
    return _mark(out, "Where", [v if isinstance(v, Variable) else None for v in (x, y)])


def _and(a, b):
    return where(a, b, Variable.literal(False, dtypes.bool_))


def _or(a, b):
    return where(a, Variable.literal(True, dtypes.bool_), b)


@composite("Clamp1")
def clamp(x: Variable, min: TensorLike | None = None, max: TensorLike | None = None) -> Variable:
    if min is None and max is None:
        raise ValueError("clamp: give min, max or both")
    # Value min(max(x, lo), hi): NaN anywhere gives NaN, hi wins when lo > hi. Gradient as
    # PyTorch's: to x where lo <= x <= hi (inclusive, not at NaN), to lo where x < lo < hi,
    # to hi where x > hi or lo > hi; none where the value is NaN.
    lo = None if min is None else _like(x, min)
    hi = None if max is None else _like(x, max)
    value = x
    if lo is not None:
        value = maximum(value, lo)
    if hi is not None:
        value = minimum(value, hi)
    out = stop_gradient(value)
    valid = eq(value, value)
    if hi is not None:
        take_hi = gt(x, hi) if lo is None else _or(gt(x, hi), gt(lo, hi))
        out = where(_and(valid, take_hi), hi, out)
    if lo is not None:
        take_lo = lt(x, lo) if hi is None else _and(lt(x, lo), lt(lo, hi))
        out = where(_and(valid, take_lo), lo, out)
    keep = ge(x, lo) if hi is None else le(x, hi) if lo is None else _and(ge(x, lo), le(x, hi))
    return where(keep, x, out)


clip = clamp


def _like(x, value):
    return value if isinstance(value, Variable) else Variable.literal(value, x.dtype)


def zeros_like_scalar(x: Variable) -> Variable:
    return Variable.literal(0, x.dtype)


def stop_gradient(x: Variable) -> Variable:
    return apply("stop_gradient", x)


# --- reductions -------------------------------------------------------------------------------

def _axes(x, dim, name="reduce"):
    if dim is None:
        return tuple(range(x.ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        if not -builtins.max(x.ndim, 1) <= d < builtins.max(x.ndim, 1):
            raise IndexError(f"{name}: dim {d} out of range for shape {x.shape} "
                             f"(expected in [{-x.ndim}, {x.ndim - 1}])")
        out.append(d % builtins.max(x.ndim, 1))
    if len(set(out)) != len(out):
        raise RuntimeError(f"{name}: dims {dims} name one dim of shape {x.shape} more than once")
    return tuple(sorted(set(a for a in out if a < x.ndim)))


def reduce(op, x, axes, keepdim=False):
    if not axes:
        return x
    return apply(op, x, axes=tuple(axes), keepdim=bool(keepdim))


def _user_reduce(op, x, axes, keepdim=False):
    """A reduction a user asked for: a new node even where there is nothing to reduce (a 0-d
    input), as in PyTorch, so that it has its own grad_fn and obeys no_grad."""
    if not axes:
        return apply("reshape", x, shape=x.shape)
    return reduce(op, x, axes, keepdim)


def sum(x: Variable, dim: Dims = None, keepdim: bool = False, dtype: DTypeLike = None) -> Variable:
    x = as_variable(x)
    if dtype is not None:
        x = cast(x, dtype)
    elif not dtypes.is_float(x.dtype):
        x = cast(x, dtypes.int64)
    out = _user_reduce("sum", x, _axes(x, dim, "sum"), keepdim and dim is not None)
    return _mark(out, "Sum" if dim is None else "Sum1", [x])


def mean(x: Variable, dim: Dims = None, keepdim: bool = False, dtype: DTypeLike = None) -> Variable:
    return _mark(_mean(x, dim, keepdim, dtype), "Mean" if dim is None else "Mean1", [x])


def _mean(x, dim, keepdim, dtype):
    if not dtypes.is_float(dtypes.as_dtype(dtype) if dtype else x.dtype):
        raise RuntimeError(f"mean: needs a floating point input, got {x.dtype}; "
                           f"use x.float().mean() or dtype=")
    if dtype is not None:
        x = cast(x, dtype)
    axes = _axes(x, dim, "mean")
    count = math.prod(x.shape[a] for a in axes)
    return per_count(reduce("sum", x, axes, keepdim and dim is not None), count)


def per_count(total: Variable, count: int) -> Variable:
    """`total / count` for a mean: times the reciprocal when the count is known now, divided by
    the size given at each call when it is symbolic (symgrad.dims)."""
    if isinstance(count, Dim):
        return div(total, Variable.literal(count, total.dtype))
    return mul(total, 1.0 / count if count else math.nan)


class MinMax(namedtuple("MinMax", ["values", "indices"])):
    """`max`/`min` with a dim: a named pair that prints as PyTorch's return types do."""
    __slots__ = ()
    _op = "max"

    def __repr__(self):
        return f"torch.return_types.{self._op}(\nvalues={self.values!r},\nindices={self.indices!r})"


class MaxReturn(MinMax):
    __slots__ = ()
    _op = "max"


class MinReturn(MinMax):
    __slots__ = ()
    _op = "min"


def _extreme(op, x, dim=None, keepdim=False):
    if isinstance(dim, Variable):
        return maximum(x, dim) if op == "max" else minimum(x, dim)
    if dim is None:
        if x.numel() == 0:
            raise RuntimeError(f"{op}(): the input of shape {x.shape} is empty; give a dim")
        return _mark(_user_reduce(op, x, _axes(x, None), False), op.capitalize() + "1", [x])
    if not isinstance(dim, int):
        raise TypeError(f"{op}: dim must be an int when indices are returned, got {dim!r}")
    (axis,) = _axes(x, dim, op) or (0,)
    if x.ndim == 0:
        values = _mark(_user_reduce(op, x, (), keepdim), op.capitalize(), [x])
        return _RETURN[op](values, Variable(np.zeros((), dtypes.int64)))
    with no_grad():
        indices = apply("arg" + op, x, axis=axis, keepdim=True)
    if dtypes.is_float(x.dtype):
        # The value is read at its index, so that its gradient goes there alone even where
        # the extreme is tied, as in PyTorch (amax and max() without a dim share it instead).
        with no_grad():
            positions = apply("iota", shape=tuple(n if i == axis else 1 for i, n in enumerate(x.shape)),
                              axis=axis, dtype="int64")
            chosen = eq(indices, positions)
        values = reduce("sum", where(chosen, x, Variable.literal(0, x.dtype)), (axis,), keepdim)
    else:
        values = reduce(op, x, (axis,), keepdim)
    if not keepdim:
        with no_grad():
            indices = reshape(indices, values.shape)
    return _RETURN[op](_mark(values, op.capitalize(), [x]), indices)


_RETURN = {"max": MaxReturn, "min": MinReturn}


def max(x: Variable, dim: Dims = None, keepdim: bool = False) -> Variable | MinMax:
    return _extreme("max", x, dim, keepdim)


def min(x: Variable, dim: Dims = None, keepdim: bool = False) -> Variable | MinMax:
    return _extreme("min", x, dim, keepdim)


def amax(x: Variable, dim: Dims = None, keepdim: bool = False) -> Variable:
    return _mark(_user_reduce("max", x, _axes(x, dim, "amax"), keepdim), "Amax", [x])


def amin(x: Variable, dim: Dims = None, keepdim: bool = False) -> Variable:
    return _mark(_user_reduce("min", x, _axes(x, dim, "amin"), keepdim), "Amin", [x])


def argmax(x: Variable, dim: int | None = None, keepdim: bool = False) -> Variable:
    if dim is None:
        return apply("argmax", reshape(x, (-1,)), axis=0, keepdim=False)
    return apply("argmax", x, axis=_axes(x, dim, "argmax")[0], keepdim=keepdim)


def argmin(x: Variable, dim: int | None = None, keepdim: bool = False) -> Variable:
    if dim is None:
        return apply("argmin", reshape(x, (-1,)), axis=0, keepdim=False)
    return apply("argmin", x, axis=_axes(x, dim, "argmin")[0], keepdim=keepdim)


@composite("LinalgVectorNorm")
def norm(x: Variable, p: float | str = 2, dim: Dims = None, keepdim: bool = False) -> Variable:
    axes = _axes(x, dim, "norm")
    keep = keepdim and dim is not None
    if p == 1:
        return reduce("sum", abs(x), axes, keep)
    if p in (math.inf, "inf"):
        return reduce("max", abs(x), axes, keep)
    if p == 2 or p == "fro":
        total, root = reduce("sum", mul(x, x), axes, keep), sqrt
    else:
        total, root = reduce("sum", pow(abs(x), float(p)), axes, keep), lambda s: pow(s, 1.0 / p)
    # At a zero vector the root sees 1 (both branches of the where stay finite): gradient 0,
    # as in PyTorch.
    zero = eq(total, 0)
    safe = where(zero, Variable.literal(1, total.dtype), total)
    return where(zero, Variable.literal(0, total.dtype), root(safe))


def _max_detached(x, axes):
    return stop_gradient(reduce("max", x, axes, True))


@composite("Logsumexp")
def logsumexp(x: Variable, dim: Dims = None, keepdim: bool = False) -> Variable:
    x = cast(x, dtypes.DEFAULT_FLOAT) if not dtypes.is_float(x.dtype) else x
    axes = _axes(x, dim, "logsumexp")
    m = _max_detached(x, axes)
    # An infinite max shifts nothing (as in PyTorch): all -inf gives -inf, not nan.
    with no_grad():
        m = where(eq(abs(m), math.inf), Variable.literal(0, x.dtype), m)
    out = add(m, log(reduce("sum", exp(sub(x, m)), axes, True)))
    return out if keepdim else reshape(out, tuple(n for i, n in enumerate(x.shape) if i not in axes))


@composite("Softmax")
def softmax(x: Variable, dim: int = -1, dtype: DTypeLike = None) -> Variable:
    if dtype is not None:
        x = cast(x, dtype)
    axes = _axes(x, dim, "softmax")
    e = exp(sub(x, _max_detached(x, axes)))
    return div(e, reduce("sum", e, axes, True))


@composite("LogSoftmax")
def log_softmax(x: Variable, dim: int = -1, dtype: DTypeLike = None) -> Variable:
    if dtype is not None:
        x = cast(x, dtype)
    axes = _axes(x, dim, "log_softmax")
    z = sub(x, _max_detached(x, axes))
    return sub(z, log(reduce("sum", exp(z), axes, True)))


# --- linear algebra ----------------------------------------------------------------------------

def swap_last(x: Variable) -> Variable:
    perm = list(range(x.ndim))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return apply("permute", x, perm=tuple(perm))


def matmul(a: TensorLike, b: TensorLike) -> Variable:
    a, b = as_variable(a), as_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dim, got shapes {a.shape} and {b.shape}")
    if a.dtype != b.dtype:
        (a, b), _ = _promote("matmul", [a, b])
    a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                         f"{a.shape[-1]} (last dim of the first) != {b2.shape[-2]} "
                         f"(the contracted dim of the second)")
    out = apply("matmul", a2, b2)
    shape = out.shape
    if a.ndim == 1:
        shape = shape[:-2] + shape[-1:]
    if b.ndim == 1:
        shape = shape[:-1]
    name = {(1, 1): "Dot", (2, 1): "Mv", (2, 2): "Mm"}.get((a.ndim, b.ndim), "Bmm")
    result = reshape(out, shape) if shape != out.shape else out
    return _mark(result, name, [a, b])


def mm(a: Variable, b: Variable) -> Variable:
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"mm: needs 2-D operands, got {a.shape} and {b.shape}")
    return matmul(a, b)


def bmm(a: Variable, b: Variable) -> Variable:
    if a.ndim != 3 or b.ndim != 3:
        raise ValueError(f"bmm: needs 3-D operands, got {a.shape} and {b.shape}")
    return matmul(a, b)


def dot(a: Variable, b: Variable) -> Variable:
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"dot: needs 1-D operands, got {a.shape} and {b.shape}")
    return matmul(a, b)


def mv(a: Variable, b: Variable) -> Variable:
    return matmul(a, b)


def permute(x: Variable, *dims: int | tuple[int, ...]) -> Variable:
    dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else dims
    if len(dims) != x.ndim:
        raise ShapeError(f"permute: {len(dims)} dims {dims} given for shape {x.shape}: the number of "
                         f"dims doesn't match")
    perm = tuple(as_dim("permute", d, x.ndim, x.shape) for d in dims)
    if len(set(perm)) != len(perm):
        raise ShapeError(f"permute: dims {dims} name one dim of shape {x.shape} twice (duplicate "
                         f"dims are not allowed)")
    if perm == tuple(range(x.ndim)):
        return x
    return apply("permute", x, perm=perm)


def transpose(x: Variable, dim0: int, dim1: int) -> Variable:
    perm = list(range(x.ndim))
    d0, d1 = (_axes(x, d, "transpose")[0] for d in (dim0, dim1))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return _mark(permute(x, perm), "Transpose", [x])


def t(x: Variable) -> Variable:
    if x.ndim > 2:
        raise ValueError(f"t(): needs at most 2 dims, got shape {x.shape}; use transpose")
    return _mark(permute(x, tuple(reversed(range(x.ndim)))), "T", [x]) if x.ndim == 2 else x


# --- shape --------------------------------------------------------------------------------------


def _shape_arg(what, shape, keep=False):
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = shape[0]
    return as_shape(what, shape, infer=True, keep=keep)


def reshape(x: Variable, *shape: int | tuple[int, ...]) -> Variable:
    shape = _shape_arg("reshape", shape)
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or x.numel() % known:
            named = " for every size of its named dimensions (the -1 would not be a whole expression " \
                "of them)" if isinstance(x.numel(), Dim) else ""
            raise ShapeError(f"reshape: shape {x.shape} ({x.numel()} elements) cannot become {shape}{named}")
        shape = tuple(x.numel() // known if s == -1 else s for s in shape)
    if shape == x.shape:
        return x
    return apply("reshape", x, shape=shape)


view = reshape


def squeeze(x: Variable, dim: Dims = None) -> Variable:
    if dim is None:
        shape = tuple(n for n in x.shape if n != 1)
    else:
        axes = _axes(x, dim, "squeeze")
        shape = tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1))
    overload = "" if dim is None else "1" if isinstance(dim, int) else "2"
    return _mark(reshape(x, shape), "Squeeze" + overload, [x])


def unsqueeze(x: Variable, dim: int) -> Variable:
    if not -x.ndim - 1 <= dim <= x.ndim:
        raise IndexError(f"unsqueeze: dim {dim} out of range for shape {x.shape}")
    dim = dim % (x.ndim + 1)
    return _mark(reshape(x, x.shape[:dim] + (1,) + x.shape[dim:]), "Unsqueeze", [x])


def flatten(x: Variable, start_dim: int = 0, end_dim: int = -1) -> Variable:
    s, e = (as_dim("flatten", d, x.ndim, x.shape) for d in (start_dim, end_dim))
    if s > e:
        raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                         f"(shape {x.shape})")
    if x.ndim == 0:
        return reshape(x, (1,))
    shape = x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:]
    return _mark(reshape(x, shape), "View", [x])     # PyTorch's flatten is a view


def broadcast_to(x: Variable, *shape: int | tuple[int, ...]) -> Variable:
    given = shape = _shape_arg("expand", shape, keep=True)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ShapeError(f"expand: shape {given} has fewer dims than the Variable's shape {x.shape}")
    for k, n in enumerate(shape):
        if n == -1 and k < lead:
            raise ShapeError(f"expand: the size -1 isn't allowed in a leading, new dim {k} "
                             f"(expanding shape {x.shape} to {given})")
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    if shape == x.shape:
        return x
    return apply("broadcast_to", x, shape=shape)


expand = broadcast_to


def cat(tensors: Sequence[Variable], dim: int = 0) -> Variable:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: needs at least one Variable")
    for k, t in enumerate(tensors):
        if isinstance(t, Variable) and t.ndim == 0:
            raise ShapeError(f"cat: the Variable at position {k} is 0-d (shape ()) and cannot be "
                             f"concatenated; use sg.stack, or unsqueeze it first")
    vs, _ = _promote("cat", tensors)
    axis = as_dim("cat", dim, vs[0].ndim, vs[0].shape)
    if len(vs) == 1:
        return vs[0]
    return _mark(apply("concat", *vs, axis=axis), "Cat", tensors)


concat = cat


def stack(tensors: Sequence[Variable], dim: int = 0) -> Variable:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: needs at least one Variable")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all inputs need one shape, got {sorted(tuple(s) for s in shapes)}")
    nd = tensors[0].ndim + 1
    if not -nd <= dim < nd:
        raise IndexError(f"stack: dim {dim} out of range for stacking Variables of shape "
                         f"{tensors[0].shape} (expected in [{-nd}, {nd - 1}])")
    return _mark(cat([unsqueeze(t, dim % nd) for t in tensors], dim % nd), "Stack", tensors)


# Which arguments of each public function are Variables: converted (or refused with an error
# naming the function and the argument) before the function runs.
TENSOR_ARGUMENTS = {
    "x": ["cast", "clamp", "stop_gradient", "mean", "max", "min", "amax", "amin", "argmax", "argmin",
          "norm", "logsumexp", "softmax", "log_softmax", "permute", "transpose", "t", "reshape",
          "squeeze", "unsqueeze", "flatten", "broadcast_to", "swap_last"],
    "a b": ["mm", "bmm", "dot", "mv"],
}                           # (and symgrad/losses.py's LOSS_ARGUMENTS)
for _names, _fns in TENSOR_ARGUMENTS.items():
    for _fn in _fns:
        globals()[_fn] = takes_tensors(globals()[_fn], _names.split())
for _fn in ("cat", "stack"):
    globals()[_fn] = takes_tensors(globals()[_fn], (), sequences=("tensors",))
_attach_docs(globals())
view, expand, clip, concat = reshape, broadcast_to, clamp, cat
