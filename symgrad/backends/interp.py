"""The numpy interpreter as a backend: nothing is generated; every call evaluates the graph."""
from __future__ import annotations

import numpy as np

from symgrad.backends.base import Backend
from symgrad.interpret import evaluate


class InterpBackend(Backend):
    name = "interp"
    compiles = False

    def run(self, fn, arrays):
        return [np.array(v) for v in evaluate(fn.graph_outputs, dict(zip(fn.args, arrays)), recompute=True)]


BACKEND = InterpBackend()
