"""Backends: what C, CUDA and the interpreter add to the pipeline they share.

Every compiled backend runs the same lowering, passes and schedule; it differs in its
templates, the names it reserves, a template context computed from the schedule (CUDA's
launch plan), how its module is built and how a call reaches it. See `base.Backend`.

    base.py     the Backend interface and its defaults
    c.py        compiler flags, the per-call fast path of a loaded C module
    cuda/       nvcc, launch plans, the device runtime, the caller
    interp.py   the numpy interpreter
"""
from __future__ import annotations

from symgrad.backends.base import Backend

NAMES = ("c", "cuda", "interp")


def backend(name: str) -> Backend:
    """The backend called `name` (its module is imported on first use: CUDA's only then)."""
    if name == "c":
        from symgrad.backends.c import BACKEND
    elif name == "cuda":
        from symgrad.backends.cuda import BACKEND
    elif name == "interp":
        from symgrad.backends.interp import BACKEND
    else:
        raise ValueError(f"backend must be one of {', '.join(NAMES)}, got {name!r}")
    return BACKEND
