"""`Variable.register_hook(fn)`: `fn(grad)` runs when the gradient of that Variable has been
computed, in `backward()` and in `sg.grad` / `sg.autograd.grad` alike, and may return a
replacement, which is what flows on (and what a leaf's `.grad` accumulates). The hooks are
kept on the Variable (`_grad_hooks`); symgrad.autodiff runs them while it builds the
gradient graph, so a hook sees the gradient as a node of that graph (with its value where
the forward pass had values)."""
from __future__ import annotations

import itertools

from symgrad.variable import Variable

_ids = itertools.count()


class RemovableHandle:
    """What `register_hook` returns: `.remove()` takes the hook off again (also as a context
    manager, on exit)."""

    def __init__(self, hooks: dict, key: int):
        self._hooks, self.id = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def register_hook(self: Variable, hook) -> RemovableHandle:
    """Run `hook(grad)` each time a gradient of this Variable is computed; a Variable it
    returns replaces the gradient. Returns a handle whose `.remove()` takes the hook off."""
    if not callable(hook):
        raise TypeError(f"register_hook takes a function of the gradient, not {type(hook).__name__}")
    if not self.requires_grad:
        raise RuntimeError(f"cannot register a hook on a tensor that doesn't require gradient "
                           f"({self._describe()})")
    hooks = self.__dict__.get("_grad_hooks")
    if hooks is None:
        hooks = self._grad_hooks = {}
    key = next(_ids)
    hooks[key] = hook
    return RemovableHandle(hooks, key)


Variable.register_hook = register_hook
