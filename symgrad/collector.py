"""Pausing Python's cyclic garbage collector while the compiler runs.

Compiling allocates many small objects (graph nodes, kernel IR, text) that stay alive until
it ends. Each allocation-triggered collection walks every live object, so with the
collector on, a graph of n nodes costs a number of collections that grows with n, each
walking O(n) objects: code generation went super-linear (a third of the time of a
5,000-op chain was the collector's). Paused, it collects once afterwards, as usual."""
from __future__ import annotations

import functools
import gc
import threading

_lock = threading.Lock()
_depth = 0          # compilations under way (in any thread) that paused the collector
_was_enabled = False


class paused:
    """`with paused():` (or `@paused()`): no automatic collections inside; the collector's
    state from before is put back when the outermost pause ends."""

    def __enter__(self):
        global _depth, _was_enabled
        with _lock:
            if _depth == 0:
                _was_enabled = gc.isenabled()
                gc.disable()
            _depth += 1
        return self

    def __exit__(self, *exc):
        global _depth
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with paused():
                return fn(*args, **kwargs)
        return wrapper
