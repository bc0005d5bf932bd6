"""Jobs for worker processes in test_pickle (a module that imports no torch, so spawned and
forkserver workers start quickly)."""
from __future__ import annotations

import os
import pickle

import numpy as np


def shard_gradient(payload):
    """Unpickle the function (bytes) and compute the value and gradients of one shard."""
    blob, args = payload
    f = pickle.loads(blob) if isinstance(blob, bytes) else blob
    value, grads = f.value_and_grad(*args)
    return float(value), [np.array(g) for g in grads], os.getpid()
