"""What the function transforms and sg.jit share: arguments made Variables, the stand-ins a
transform differentiates with respect to, values computed for eager results, and the error for
Python control flow on a traced value."""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from symgrad import dtypes
from symgrad.graph import toposort
from symgrad.node import SymbolicValueError
from symgrad.variable import Variable, apply


class TracedValueError(RuntimeError):
    """Python asked for the value of a traced Variable (an `if` or `while` on it, `bool()`,
    `float()`, `int()`, `.item()`, `.numpy()`) while sg.jit or sg.func.vmap traced a function
    on placeholders that have no value."""


def as_variable(x):
    """A transform's array argument as a Variable, as `sg.as_tensor` makes it: Variables as
    they are, numpy arrays keeping their dtype, Python numbers and lists as `sg.tensor` makes
    them (the default float dtype, int64)."""
    from symgrad.creation import as_tensor
    return as_tensor(x)


def is_array(x) -> bool:
    return isinstance(x, (Variable, np.ndarray, np.generic))


def stand_in(x: Variable, fn_name: str, who: str) -> Variable:
    """A new node equal to `x` that requires grad: what `fn_name` differentiates with respect to.
    Being its own node, gradients with respect to it follow only the paths through it, so that
    nested transforms do not confuse one level's input with another's closed-over value."""
    if not dtypes.is_float(x.dtype):
        raise TypeError(f"{fn_name}: cannot differentiate with respect to {who}, of dtype {x.dtype} "
                        f"(shape {x.shape}): only floating point inputs have gradients")
    s = apply("reshape", x, shape=x.shape)
    s._requires_grad = True
    s.name = x.name
    return s


def compute(leaves) -> None:
    """Give values, computed together by the interpreter, to the result Variables that can
    have one (their inputs hold values) and do not yet (gradient graphs are built lazily)."""
    pending = [v for v in leaves if isinstance(v, Variable) and v._value is None and v.is_concrete]
    if pending:
        from symgrad.interpret import evaluate
        for v, value in zip(pending, evaluate(pending)):
            v._value = np.asarray(value, dtype=v.dtype)


class _Depth(threading.local):
    n = 0


_depth = _Depth()


@contextmanager
def nested():
    """Around the body of a differentiation transform: `release` then knows whether a result
    goes back to the user (the outermost transform) or to another transform."""
    _depth.n += 1
    try:
        yield
    finally:
        _depth.n -= 1


def release(leaves) -> list:
    """Results as the outermost transform hands them to the user: computed where they can be,
    and, as torch.func's, not requiring grad unless they depend on a Variable that does (an
    argument or a closed-over weight); the stand-ins' own flags stay inside the transform.
    Inside another transform, or where there is no value (a graph for sg.jit), as they are."""
    leaves = list(leaves)
    compute(leaves)
    if _depth.n:
        return leaves
    variables = [v for v in leaves if isinstance(v, Variable)]
    grad_leaf_below = {}                 # id(node) -> whether a leaf that requires grad feeds it
    for u in toposort(variables):        # inputs first: one pass for all the results
        grad_leaf_below[id(u)] = (u.op is None and u._requires_grad) or \
            any(grad_leaf_below[id(i)] for i in u.inputs)
    out = []
    for v in leaves:
        if isinstance(v, Variable) and v._requires_grad and v._value is not None and v.op is not None \
                and not grad_leaf_below[id(v)]:
            free = Variable(v._value)
            free.name = v.name
            v = free
        out.append(v)
    return out


@contextmanager
def traced(where: str, names: dict):
    """Run a function on placeholders (`names`: {id(placeholder): how to name it}): where it
    asks for the value of one of them, a TracedValueError that names the argument."""
    try:
        yield
    except SymbolicValueError as e:
        missing = [names[id(v)] for v in toposort([e.node], lambda v: v.is_concrete) if id(v) in names]
        if not missing:
            raise
        raise TracedValueError(
            f"{where}: Python control flow (if, while, bool(), float(), int(), .item(), .numpy()) on a "
            f"traced value: it depends on {', '.join(missing)}, which has no value while the function "
            f"is traced. Use sg.where (or masked_fill, maximum, ...) to choose between values, or pass "
            f"the argument as static (sg.jit's static_argnums)") from None
