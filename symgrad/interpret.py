"""The numpy reference interpreter: every compiled result is tested against it."""
from __future__ import annotations

import numpy as np

from symgrad.dims import specialise
from symgrad.graph import toposort
from symgrad.ops import OPS


def evaluate(outputs, feed=None, recompute=False, sizes=None):
    """Values of `outputs`. `feed` maps Variables to arrays. Nodes not fed that already hold a
    value use it (with `recompute`, only leaves do: the graph is run from its inputs);
    symbolic inputs that are not fed are an error. `sizes` ({name: size}) binds the symbolic
    dimensions (symgrad.dims) that the nodes' attributes (reshape targets, broadcast shapes,
    counts) hold: each op runs with its attributes at those sizes."""
    feed = {id(k): np.asarray(v) for k, v in (feed or {}).items()}

    def known(v):
        return id(v) in feed or (v._value is not None and (v.op is None or not recompute))

    order = toposort(outputs, known)
    env = {}
    for v in order:
        if id(v) in feed:
            env[id(v)] = feed[id(v)]
        elif known(v):
            env[id(v)] = v._value
        elif v.op is None:
            raise RuntimeError(f"no value given for the symbolic input {v._describe()}")
        else:
            with np.errstate(all="ignore"):     # inf and nan are values, as in PyTorch
                attrs = specialise(v.attrs, sizes) if sizes else v.attrs
                out = OPS[v.op].impl(*(env[id(i)] for i in v.inputs), **attrs)
            env[id(v)] = np.asarray(out, dtype=v.dtype)
    return [env[id(o)] for o in outputs]
