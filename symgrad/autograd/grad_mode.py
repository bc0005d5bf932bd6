"""Grad modes, as PyTorch's `torch.autograd.grad_mode`: `no_grad`, `enable_grad`,
`set_grad_enabled`, `inference_mode`, each a context manager and a decorator (`@sg.no_grad`
and `@sg.no_grad()` alike). They set the thread's flag that `symgrad.variable.apply` reads:
results made while it is off do not require grad."""
from __future__ import annotations

import functools
import inspect

import numpy as np

from symgrad.variable import mode as _state


def is_grad_enabled() -> bool:
    """Whether results made now record the graph for gradients (PyTorch's function)."""
    return _state.grad_enabled


def is_inference_mode_enabled() -> bool:
    """Whether an `inference_mode()` block is running in this thread."""
    return getattr(_state, "inference", False)


def _check_mode(who: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who}: mode must be a bool (True or False), not {type(value).__name__} {value!r}")
    return bool(value)


class _Decorating:
    """A context manager that decorates functions too: the function runs inside a fresh copy
    of the manager (`clone`), so a decorated function may call itself."""

    def clone(self):
        return type(self)()

    def __call__(self, fn):
        if not callable(fn):
            raise TypeError(f"{type(self).__name__}: a decorator takes a function, not {type(fn).__name__}")
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def generator(*args, **kwargs):
                gen = fn(*args, **kwargs)
                sent = None
                while True:
                    try:
                        with self.clone():
                            value = gen.send(sent)
                    except StopIteration as stop:
                        return stop.value
                    try:
                        sent = yield value
                    except GeneratorExit:
                        gen.close()
                        raise
            return generator

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.clone():
                return fn(*args, **kwargs)
        return wrapper


class _NoParams(_Decorating):
    """Also a decorator without parentheses: `@no_grad` is `@no_grad()`."""

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        return cls()(orig_func)


class no_grad(_NoParams):
    """Context manager and decorator: results made inside do not require grad, even when their
    inputs do. Creation functions given `requires_grad=True` still make leaves that do."""

    def __init__(self, orig_func=None):
        self.prev = False

    def __enter__(self):
        self.prev = _state.grad_enabled
        _state.grad_enabled = False

    def __exit__(self, *exc):
        _state.grad_enabled = self.prev


class enable_grad(_NoParams):
    """Context manager and decorator: gradients are recorded inside, even within `no_grad`."""

    def __init__(self, orig_func=None):
        self.prev = True

    def __enter__(self):
        self.prev = _state.grad_enabled
        _state.grad_enabled = True

    def __exit__(self, *exc):
        _state.grad_enabled = self.prev


class set_grad_enabled(_Decorating):
    """`sg.set_grad_enabled(False)` turns gradient recording off at once (a function); `with
    sg.set_grad_enabled(b):` sets it for a block and restores it after; as a decorator it sets
    it while the function runs."""

    def __init__(self, mode: bool):
        value = _check_mode("set_grad_enabled", mode)
        self.prev = _state.grad_enabled
        self.mode = value
        _state.grad_enabled = value

    def __call__(self, fn):
        _state.grad_enabled = self.prev
        return super().__call__(fn)

    def __enter__(self):
        _state.grad_enabled = self.mode

    def __exit__(self, *exc):
        _state.grad_enabled = self.prev

    def clone(self):
        prev = _state.grad_enabled
        out = type(self)(self.mode)
        _state.grad_enabled = prev
        out.prev = prev
        return out

    def __repr__(self):
        return f"symgrad.autograd.grad_mode.set_grad_enabled(mode={self.mode})"

    __str__ = __repr__


class inference_mode(_Decorating):
    """`with sg.inference_mode():` (or as a decorator, with or without parentheses): like
    `no_grad`, and `sg.is_inference_mode_enabled()` is true inside. `inference_mode(False)`
    turns inference mode off and gradients on (inside `no_grad` too), as PyTorch's does."""

    def __new__(cls, mode=True):
        if isinstance(mode, (bool, np.bool_)):
            return super().__new__(cls)
        if callable(mode):
            return cls()(mode)
        raise TypeError(f"inference_mode: mode must be a bool or a function to decorate, "
                        f"not {type(mode).__name__} {mode!r}")

    def __init__(self, mode=True):
        self.mode = bool(mode)

    def clone(self):
        return type(self)(self.mode)

    def __enter__(self):
        self._prev = (_state.grad_enabled, is_inference_mode_enabled())
        if self.mode:
            _state.grad_enabled = False
            _state.inference = True
        else:                        # as PyTorch: gradients on, inference off
            _state.grad_enabled = True
            _state.inference = False

    def __exit__(self, *exc):
        _state.grad_enabled, _state.inference = self._prev
