"""Custom functions, as PyTorch's `torch.autograd.Function`:

    class Exp(sg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * y

    y = Exp.apply(x)

Both methods are written with symgrad operations, so both become graphs. `apply` traces
`forward` with gradients off and records one `custom_function` node (symgrad/ops/custom.py)
whose value is that traced graph and whose inputs are also the Variables given to `apply`;
its pullback traces `backward` on the cotangents (symbolic Variables of the gradient graph).
So `sg.grad`, `backward()` and `sg.compile` go through a custom function like any other op,
and it can be differentiated again when `backward` is differentiable.

Several outputs are one node too: their values, flattened and joined into one vector, with
each output a slice of it, so that the node's one cotangent carries every output's."""
from __future__ import annotations

import functools
import math

import numpy as np

import symgrad.ops.builders as G
from symgrad import dtypes
from symgrad.variable import AccumulateGrad, Function as Node, Variable, _backward_classes, mode, no_grad
from symgrad.variable import apply as apply_op


class FunctionCtx:
    """The `ctx` that `forward` and `backward` share: `save_for_backward(*tensors)` and
    `saved_tensors`, `needs_input_grad` (one bool per argument of `apply`),
    `mark_non_differentiable(*outputs)`, `set_materialize_grads(b)`, and any attribute of the
    user's own (`ctx.constant = 3`)."""

    def __init__(self):
        self._saved, self._versions = (), ()
        self._non_differentiable = set()
        self.materialize_grads = True
        self.needs_input_grad = ()

    def save_for_backward(self, *tensors) -> None:
        for k, t in enumerate(tensors):
            if t is not None and not isinstance(t, Variable):
                raise TypeError(f"save_for_backward can only save variables, but argument {k} is of "
                                f"type {type(t).__name__}; keep other values as attributes of ctx")
        self._saved = tensors
        self._versions = tuple(None if t is None else t._vbox[0] for t in tensors)

    @property
    def saved_tensors(self) -> tuple:
        """The Variables saved by forward; one changed in place since is PyTorch's error (its
        value is gone, so a gradient from it would be wrong)."""
        for t, seen in zip(self._saved, self._versions):
            if t is not None and t._vbox[0] != seen:
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: {t._describe()}, saved by save_for_backward, is at version "
                    f"{t._vbox[0]}; expected version {seen} instead. Compute it out of place "
                    f"(y = y * 2 instead of y.mul_(2)) or on a copy (x.clone())")
        return tuple(self._saved)

    def mark_non_differentiable(self, *outputs) -> None:
        """These outputs get no gradient: they do not require grad, and `backward` is given
        zeros for them."""
        for o in outputs:
            if not isinstance(o, Variable):
                raise TypeError(f"mark_non_differentiable takes outputs of forward (Variables), "
                                f"not {type(o).__name__}")
            self._non_differentiable.add(id(o))

    def mark_dirty(self, *tensors) -> None:
        """Accepted for PyTorch's programs: symgrad's forward records an in-place change as a
        new node of the graph anyway."""

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = bool(value)


class BackwardCFunction(Node):
    """The grad_fn of a custom function's outputs: `<symgrad.autograd.function.ExpBackward ...>`."""

    def __repr__(self):
        return f"<{type(self).__module__}.{type(self).__qualname__} object at {hex(id(self))}>"

    def __getattr__(self, name):
        # As in PyTorch, where this node is the ctx: y.grad_fn.saved_tensors, y.grad_fn.constant.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._variable.attrs["fn"].ctx, name)


class FunctionMeta(type):
    """Gives each custom Function its grad_fn class, `<Name>Backward`."""

    def __init__(cls, name, bases, attrs):
        super().__init__(name, bases, attrs)
        if "vjp" in attrs and "backward" not in attrs:      # PyTorch's other name for backward
            cls.backward = attrs["vjp"]
        backward_name = f"{name}Backward"
        node_cls = type(backward_name, (BackwardCFunction,), {"__module__": __name__,
                                                               "__qualname__": backward_name})
        cls._backward_cls = node_cls
        cls._backward_key = f"{cls.__module__}.{cls.__qualname__}:{id(cls)}"
        _backward_classes[cls._backward_key] = node_cls


class Function(metaclass=FunctionMeta):
    """Base class of custom differentiable functions (PyTorch's `torch.autograd.Function`):
    subclass it with static `forward(ctx, *args)` and `backward(ctx, *grads)` (or `forward(*args)`
    with `setup_context(ctx, inputs, output)`), and call `YourFunction.apply(*args)`."""

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("a custom sg.autograd.Function must define forward(ctx, *args) "
                                  "as a @staticmethod")

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError("setup_context is not defined")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("a custom sg.autograd.Function must define backward(ctx, *grads) "
                                  "as a @staticmethod to be differentiated")

    vjp = backward

    def __init__(self, *args, **kwargs):
        raise RuntimeError(f"{type(self).__name__}: a custom Function is not instantiated; call "
                           f"{type(self).__name__}.apply(...) (forward and backward are staticmethods)")

    @classmethod
    def apply(cls, *args, **kwargs):
        if cls.forward is Function.forward:
            raise NotImplementedError(f"{cls.__name__} must define forward as a @staticmethod")
        ctx = FunctionCtx()
        recording = mode.grad_enabled
        ctx.needs_input_grad = tuple(bool(recording and isinstance(a, Variable) and a.requires_grad)
                                     for a in args)
        separate = cls.setup_context is not Function.setup_context
        with no_grad():
            if separate:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        outs = out if isinstance(out, tuple) else (out,)
        diff = [k for k, o in enumerate(outs) if isinstance(o, Variable) and dtypes.is_float(o.dtype)
                and id(o) not in ctx._non_differentiable]
        if not any(ctx.needs_input_grad) or not diff:
            return out
        call = _Call(cls, ctx, args, outs, diff)
        results = call.outputs()
        saved = {id(outs[k]): results[k] for k in diff}
        ctx._saved = tuple(saved.get(id(t), t) for t in ctx._saved)
        ctx._versions = tuple(None if t is None else t._vbox[0] for t in ctx._saved)
        return results if isinstance(out, tuple) else results[0]


class _Call:
    """One call of a custom Function: its ctx, what `forward` returned, and the node."""

    def __init__(self, cls, ctx, args, outs, diff):
        self.cls, self.ctx, self.args, self.outs, self.diff = cls, ctx, args, outs, diff
        self.variables = tuple(a for a in args if isinstance(a, Variable))

    def __repr__(self):
        return self.cls.__qualname__

    def outputs(self) -> list:
        """The results `apply` returns: the differentiable outputs made from the node, the
        others as `forward` made them (they do not require grad)."""
        outs, diff = self.outs, self.diff
        results = list(outs)
        with no_grad():
            # forward's values, never themselves differentiated (`return x` is an input of apply)
            parts = [G.stop_gradient(o) if o.requires_grad else o for o in (outs[k] for k in diff)]
            if len(diff) > 1:
                self.dtype = np.result_type(*(p.dtype for p in parts))
                parts = [G.reshape(G.cast(p, self.dtype), (p.numel(),)) for p in parts]
                value = apply_op("concat", *parts, axis=0)
            else:
                value = parts[0]
        node = apply_op("custom_function", value, *self.variables, fn=self)
        if len(diff) == 1:
            results[diff[0]] = node
        else:
            start = 0
            for k in diff:
                o = outs[k]
                part = apply_op("slice", node, starts=(start,), stops=(start + o.numel(),), steps=(1,))
                results[k] = G.reshape(G.cast(part, o.dtype), o.shape)
                start += o.numel()
        node._fn = (self.cls._backward_key, self.variables)
        shared = node.grad_fn                # one grad_fn for all outputs, as in PyTorch
        for k in diff:
            results[k]._fn = node._fn
            results[k]._grad_fn = shared
        return results

    def _cotangents(self, g) -> list:
        """One gradient per output of forward, for `backward`: the slices of the node's
        cotangent `g`, zeros for non-differentiable outputs (integer ones too, as PyTorch), None
        for what is not a Variable."""
        grads, start = [], 0
        for k, o in enumerate(self.outs):
            if not isinstance(o, Variable):
                grads.append(None)
            elif k not in self.diff:
                grads.append(G.zeros(o))
            elif len(self.diff) == 1:
                grads.append(g)
            else:
                part = G.node("slice", g, starts=(start,), stops=(start + o.numel(),), steps=(1,))
                grads.append(G.reshape(G.cast(part, o.dtype), o.shape))
                start += o.numel()
        return grads

    def pullback(self, g, node, needs):
        name = self.cls._backward_cls.__name__
        result = self.cls.backward(self.ctx, *self._cotangents(g))
        result = result if isinstance(result, tuple) else (result,)
        n = len(self.args)
        if len(result) != n and not (len(result) > n and all(r is None for r in result[n:])):
            raise RuntimeError(f"function {name} returned an incorrect number of gradients "
                               f"(expected {n}, got {len(result)}): backward returns one per argument "
                               f"of forward (None for those that need none)")
        pulled = [g if needs[0] else None]
        for k, (a, r) in enumerate(zip(self.args, result)):
            if not isinstance(a, Variable):
                if r is not None:
                    raise RuntimeError(f"function {name} returned a gradient different than None at "
                                       f"position {k + 1}, but the corresponding forward input was "
                                       f"not a Variable")
                continue
            pulled.append(None if r is None else _fit(name, k, r, a))
        return [p if need else None for p, need in zip(pulled, needs)]


def _fit(name, k, grad, x):
    """A gradient `backward` returned for argument `k` (input `x`), as the cotangent of `x`:
    of its dtype, and summed down to its shape where it was broadcast (as PyTorch does)."""
    if not isinstance(grad, Variable):
        try:
            grad = Variable(np.asarray(grad, dtype=x.dtype))
        except (TypeError, ValueError):
            raise TypeError(f"function {name} returned a {type(grad).__name__} as the gradient of "
                            f"argument {k}; return a Variable (or None)") from None
    if not dtypes.is_float(grad.dtype):
        raise TypeError(f"function {name} returned a gradient of dtype {grad.dtype} for argument {k} "
                        f"({x._describe()}); gradients are floating point")
    if grad.shape != x.shape:
        lead = grad.ndim - x.ndim
        if lead < 0 or any(n not in (1, m) for n, m in zip(x.shape, grad.shape[lead:])) \
                or math.prod(grad.shape) < math.prod(x.shape):
            if grad.numel() == x.numel():
                return G.cast(G.reshape(grad, x.shape), x.dtype)
            raise RuntimeError(f"function {name} returned an invalid gradient at index {k} - got "
                               f"{list(grad.shape)} but expected shape compatible with {list(x.shape)}")
        grad = G.sum_to(grad, x.shape)
    return G.cast(grad, x.dtype)


def once_differentiable(backward):
    """PyTorch's decorator for a `backward` that is not itself differentiable. Its results do
    not require grad, as PyTorch's (which runs such a backward under no_grad); where the
    incoming gradients require grad (a second derivative that goes through them), they are
    marked so that differentiating them raises instead of giving a wrong number."""
    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        result = backward(ctx, *grads)
        single = not isinstance(result, tuple)
        result = (result,) if single else result
        delayed = any(isinstance(g, Variable) and g.requires_grad for g in grads)

        def mark(r):
            if not isinstance(r, Variable) or not r.requires_grad:
                return r
            if delayed:
                return _OnceDifferentiable.apply(r)
            with no_grad():
                return G.stop_gradient(r)
        marked = tuple(mark(r) for r in result)
        return marked[0] if single else marked
    return wrapper


class _OnceDifferentiable(Function):
    @staticmethod
    def forward(ctx, x):
        return G.stop_gradient(x)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("trying to differentiate twice a function that was marked with "
                           "@once_differentiable")


__all__ = ["Function", "FunctionCtx", "once_differentiable", "BackwardCFunction", "AccumulateGrad"]
