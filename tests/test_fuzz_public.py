"""Bad arguments to every public function and Variable method: each call either returns or
raises a clear Python exception (TypeError, ValueError, RuntimeError, IndexError, ...), never
an internal one (AttributeError, KeyError, AssertionError, ...) and never a crash. The calls run
in a child process, so a segfault or a hang fails the test instead of killing the run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

FUZZ = textwrap.dedent(r'''
    import inspect, itertools, json, sys, warnings
    import numpy as np
    import symgrad as sg

    warnings.simplefilter("ignore")
    CLEAR = (TypeError, ValueError, RuntimeError, IndexError, NotImplementedError, ZeroDivisionError,
             OverflowError, MemoryError, sg.CompileError)

    def pool():
        return [None, "a", 1.5, -1, 0, 2 ** 70, True, (), [], [[1, 2], [3]], {"k": 1}, object(),
                np.array(["x"]), np.ones((2, 3), np.float16), np.ones((2, 3)), float("nan"),
                sg.tensor(3.0), sg.tensor([1, 2]), sg.ones(2, 3), sg.ones(2, 3, requires_grad=True),
                sg.tensor([True, False]), sg.Variable(shape=(2, 3), name="s"), sg.zeros(0, 3), slice(None),
                (-5, 2), (2, -3), (1.5,), sg.float64]

    skip = {"manual_seed", "compile", "debugprint", "to_dot", "cuda", "dtypes", "autograd", "nn", "Size",
            "gradcheck", "enable_grad", "no_grad", "Variable", "Tensor"}
    names = sorted(n for n in sg.__all__ if callable(getattr(sg, n)) and n not in skip
                   and not isinstance(getattr(sg, n), type(np.float32)))
    methods = sorted(n for n in dir(sg.Variable) if not n.startswith("_") and callable(getattr(sg.Variable, n))
                     and n not in ("backward", "register_hook", "apply_"))
    bad = []

    def attempt(label, fn, args):
        try:
            with np.errstate(all="ignore"):
                fn(*args)
        except CLEAR:
            pass
        except Exception as e:  # noqa: BLE001
            bad.append(f"{label}{tuple(type(a).__name__ for a in args)}: {type(e).__name__}: {e}"[:300])

    values = pool()
    for name in names:
        fn = getattr(sg, name)
        attempt(name, fn, ())
        for a in values:
            attempt(name, fn, (a,))
        for a, b in itertools.product(values[::2], values[1::3]):
            attempt(name, fn, (a, b))
    for name in methods:
        for target in (sg.ones(2, 3), sg.tensor([1, 2]), sg.tensor(2.0)):
            fn = getattr(target, name)
            attempt("Variable." + name, fn, ())
            for a in values:
                attempt("Variable." + name, fn, (a,))
    json.dump(bad, sys.stdout)
''')


def test_bad_arguments_give_clear_exceptions(tmp_path):
    env = dict(os.environ, SYMGRAD_EAGER_BACKEND="interp", SYMGRAD_BUILD_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", FUZZ], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, f"the fuzzing process died (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    bad = json.loads(proc.stdout)
    assert not bad, f"{len(bad)} calls raised internal errors:\n" + "\n".join(bad[:40])


if __name__ == "__main__":      # pragma: no cover  (python tests/test_fuzz_public.py lists them)
    pytest.main([__file__, "-q"])
