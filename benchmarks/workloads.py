"""The workloads of the suite: their inputs, a hand-written numpy forward and backward (run in
float32 it is the "numpy" peer, run in float64 it is the reference every result is checked
against), and each workload's floor (bytes it must move, or FLOPs it must do)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Arg:
    name: str
    shape: tuple
    dtype: str = "float32"
    grad: bool = True           # differentiated (every float input except W2's data x)


@dataclass
class Workload:
    id: str                     # "W1/1e6"
    group: str                  # "W1": what --only selects
    kind: str                   # which math (w1..w5)
    title: str
    args: list
    floor_kind: str             # "bytes", "flops" or "none"
    floor_amount: float = 0.0   # bytes or FLOPs
    floor_note: str = ""
    unit: str = "ms"            # how times print
    params: dict = field(default_factory=dict)

    @property
    def grad_index(self):
        return [k for k, a in enumerate(self.args) if a.grad]


def make_workloads(quick=False):
    wls = []
    for n in ([10**6] if quick else [10**6, 10**7]):
        short = f"{n:.0e}".replace("+0", "")
        wls.append(Workload(
            f"W1/{short}", "W1", "w1", f"sum(tanh(x*w+b)**2 + exp(-x)*0.5), N={short}",
            [Arg("x", (n,)), Arg("w", (n,)), Arg("b", (n,))],
            "bytes", 6 * 4 * n, "read x,w,b + write 3 gradients: 6*4*N bytes"))
    B, D, H, C = 256, 784, 512, 10
    wls.append(Workload(
        "W2", "W2", "w2", f"MLP step {B}x{D}->{H}->{C}, relu, cross-entropy (mean)",
        [Arg("x", (B, D), grad=False), Arg("labels", (B,), "int64", grad=False),
         Arg("W1", (D, H)), Arg("b1", (H,)), Arg("W2", (H, C)), Arg("b2", (C,))],
        "flops", 2.0 * (2 * B * D * H) + 3.0 * (2 * B * H * C),
        "GEMMs: x@W1 and x.T@dh (2*2*B*784*512) + 3 small ones with 10 columns"))
    M = 4096
    wls.append(Workload(
        "W3", "W3", "w3", f"sum(mean(x**2, dim=1)), x {M}x{M}",
        [Arg("x", (M, M))], "bytes", 2 * 4 * M * M, "read x + write its gradient: 2*4*M*M bytes"))
    K = 1024
    wls.append(Workload(
        "W4", "W4", "w4", f"sum(A @ B), {K}x{K}",
        [Arg("A", (K, K)), Arg("B", (K, K))], "flops", 2.0 * K ** 3,
        "the forward product 2*K^3 (its gradients are row/column sums broadcast, O(K^2))"))
    wls.append(Workload(
        "W5", "W5", "w5", "sum(x*y + x), x, y of 16: the cost of one call",
        [Arg("x", (16,)), Arg("y", (16,))], "none", 0, "per-call overhead; no meaningful floor", unit="us"))
    return wls


def make_inputs(wl: Workload, seed=0):
    """float32 (and int64 label) inputs; deterministic."""
    rng = np.random.default_rng(seed)
    out = []
    for a in wl.args:
        if a.dtype == "int64":
            out.append(rng.integers(0, 10, size=a.shape).astype(np.int64))
            continue
        v = rng.standard_normal(a.shape, dtype=np.float32)
        if wl.kind == "w2" and a.name in ("W1", "W2"):
            v *= np.float32(np.sqrt(2.0 / a.shape[0]))
        elif wl.kind == "w2" and a.name in ("b1", "b2"):
            v *= np.float32(0.1)
        out.append(v)
    return out


# --- hand-written forward and hand-derived gradients (dtype follows the inputs) ---------------

def w1(x, w, b):
    t = np.tanh(x * w + b)
    e = np.exp(-x)
    value = np.sum(t * t + e * 0.5)
    dz = 2 * t * (1 - t * t)
    return value, [dz * w - 0.5 * e, dz * x, dz]


def w2(x, labels, W1, b1, W2, b2):
    B = x.shape[0]
    hp = x @ W1 + b1
    h = np.maximum(hp, 0)
    logits = h @ W2 + b2
    z = logits - logits.max(axis=1, keepdims=True)
    ez = np.exp(z)
    s = ez.sum(axis=1, keepdims=True)
    rows = np.arange(B)
    value = np.mean(np.log(s[:, 0]) - z[rows, labels])
    dl = ez / s
    dl[rows, labels] -= 1
    dl /= B
    gW2 = h.T @ dl
    gb2 = dl.sum(axis=0)
    dh = (dl @ W2.T) * (hp > 0)
    return value, [x.T @ dh, dh.sum(axis=0), gW2, gb2]


def w3(x):
    m = x.shape[1]
    value = np.sum(x * x) / m
    return value, [x * (2 / m)]


def w4(A, B):
    value = np.sum(A @ B)
    gA = np.empty_like(A)
    gA[...] = B.sum(axis=1)            # d/dA[i,k] = sum_j B[k,j]
    gB = np.empty_like(B)
    gB[...] = A.sum(axis=0)[:, None]   # d/dB[k,j] = sum_i A[i,k]
    return value, [gA, gB]


def w5(x, y):
    return np.sum(x * y + x), [y + 1, x.copy()]


NUMPY = {"w1": w1, "w2": w2, "w3": w3, "w4": w4, "w5": w5}


def reference(wl: Workload, inputs):
    """float64 value and gradients."""
    args = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in inputs]
    value, grads = NUMPY[wl.kind](*args)
    return float(value), [np.asarray(g, np.float64) for g in grads]


def check(wl: Workload, value, grads, ref, rtol=1e-3):
    """Each output against the float64 reference: max|got - ref| <= rtol * max|ref| (per array;
    for the scalar value that is a plain relative error). Returns (ok, worst relative error, note)."""
    ref_value, ref_grads = ref
    got = [np.asarray(value)] + [np.asarray(g) for g in grads]
    want = [np.asarray(ref_value)] + ref_grads
    names = ["value"] + [f"d{wl.args[k].name}" for k in wl.grad_index]
    if len(got) != len(want):
        return False, float("inf"), f"{len(got) - 1} gradients, expected {len(want) - 1}"
    worst, bad = 0.0, []
    for name, g, w in zip(names, got, want):
        if g.size != w.size:
            return False, float("inf"), f"{name}: shape {g.shape}, expected {w.shape}"
        g = g.reshape(w.shape).astype(np.float64)
        if not np.all(np.isfinite(g)):
            return False, float("inf"), f"{name}: not finite"
        scale = max(float(np.max(np.abs(w))), 1e-30)
        err = float(np.max(np.abs(g - w))) / scale
        worst = max(worst, err)
        if err > rtol:
            bad.append(f"{name} rel.err {err:.1e}")
    return not bad, worst, "; ".join(bad)


def self_check_reference():
    """The hand-derived gradients against float64 central differences at small sizes, along random
    directions: so that a wrong reference cannot make every peer FAIL (or PASS) together."""
    small = {"w1": [(50,), (50,), (50,)], "w2": [(8, 7), (8,), (7, 6), (6,), (6, 3), (3,)],
             "w3": [(5, 7)], "w4": [(6, 6), (6, 6)], "w5": [(16,), (16,)]}
    rng = np.random.default_rng(1)
    problems = []
    for kind, shapes in small.items():
        args = []
        for k, s in enumerate(shapes):
            if kind == "w2" and k == 1:
                args.append(rng.integers(0, 3, size=s))
            else:
                args.append(rng.standard_normal(s))
        diff = [k for k in range(len(args)) if not (kind == "w2" and k in (0, 1))]
        f = NUMPY[kind]
        _, grads = f(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
        for _ in range(3):
            d = {k: rng.standard_normal(args[k].shape) for k in diff}
            eps = 1e-6
            plus = [a + eps * d[k] if k in d else a for k, a in enumerate(args)]
            minus = [a - eps * d[k] if k in d else a for k, a in enumerate(args)]
            fd = (f(*plus)[0] - f(*minus)[0]) / (2 * eps)
            an = sum(float(np.sum(g * d[k])) for g, k in zip(grads, diff))
            if abs(fd - an) > 1e-6 * max(1.0, abs(an)):
                problems.append(f"{kind}: directional derivative {an!r} vs finite difference {fd!r}")
    return problems
