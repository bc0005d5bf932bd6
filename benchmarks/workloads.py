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
    scale: float = 1.0          # inputs are standard normal times this


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
    return wls + model_workloads() + model_workloads(VARIANT_SIZES, "'", "VARIANTS")


def _gemm(m, k, n, batch=1):
    return 2.0 * batch * m * k * n


# The model workloads' sizes; VARIANTS are the same kinds at other sizes (wider and narrower
# rows, longer and shorter sequences), ids marked with a prime: the check that speed holds
# where nothing was tuned.
SIZES = dict(norm=(2048, 1024), softmax=(4096, 2048), att=(512, 64), mha=(4, 256, 256),
             mlp=(256, 1024), rnn=(32, 64, 128, 256), hvp=(1024, 512, 64), bmm=(32, 128, 256))
VARIANT_SIZES = dict(norm=(8192, 384), softmax=(1024, 8000), att=(1024, 128), mha=(8, 128, 512),
                     mlp=(64, 2048), rnn=(64, 32, 64, 512), hvp=(4096, 256, 32), bmm=(128, 64, 96))


def model_workloads(sizes=None, mark="", group=None):
    """The workloads symgrad was not tuned on (benchmarks/models.py): normalisations, attention,
    MLPs, an RNN, a Hessian-vector product and a batched matmul, each forward and every gradient.
    `sizes` (default SIZES), `mark` appended to each id, `group` instead of the id as the
    group --only selects."""
    sizes = SIZES if sizes is None else sizes

    def w(name, *shape):        # a weight: 1/sqrt(fan-in)
        return Arg(name, shape, scale=1 / shape[0] ** 0.5)

    def bias(name, n):
        return Arg(name, (n,), scale=0.1)

    def data(name, *shape):
        return Arg(name, shape, grad=False)

    def model(wid, kind, title, args, floor_kind, amount, note, **params):
        return Workload(wid + mark, group or wid, kind, title, args, floor_kind, amount, note, params=params)

    out = []
    N, D = sizes["norm"]
    out.append(model("LN", "layernorm", f"sum(tanh(layer_norm(x)*w+b)), x {N}x{D}",
                     [Arg("x", (N, D)), Arg("w", (D,), scale=0.5), bias("b", D)],
                     "bytes", 2 * 4 * N * D, "read x + write its gradient"))
    out.append(model("RMS", "rmsnorm", f"sum(tanh(rms_norm(x)*w)), x {N}x{D}",
                     [Arg("x", (N, D)), Arg("w", (D,), scale=0.5)],
                     "bytes", 2 * 4 * N * D, "read x + write its gradient"))
    N, D = sizes["softmax"]
    for wid, kind, f in (("SM", "softmax", "softmax"), ("LSM", "log_softmax", "log_softmax")):
        out.append(model(wid, kind, f"sum({f}(x, -1) * t), x {N}x{D}",
                         [Arg("x", (N, D)), data("t", N, D)],
                         "bytes", 3 * 4 * N * D, "read x, t + write the gradient"))
    out.append(model("LSE", "logsumexp", f"sum(logsumexp(x, -1)), x {N}x{D}", [Arg("x", (N, D))],
                     "bytes", 2 * 4 * N * D, "read x + write its gradient"))
    S, d = sizes["att"]
    out.append(model("ATT", "attention", f"sum(tanh(softmax(q k^T/sqrt(d)) v)), one head {S}x{d}",
                     [Arg("q", (S, d)), Arg("k", (S, d)), Arg("v", (S, d))],
                     "flops", 6 * _gemm(S, d, S), "2 GEMMs forward, 4 backward"))
    B, S, D = sizes["mha"]
    proj = [w(n, D, D) for n in ("wq", "wk", "wv", "wo")]
    att_flops = 3 * 4 * _gemm(S, D, D, B) + 6 * _gemm(S, D // 4, S, 4 * B)
    out.append(model("MHA", "mha", f"multi-head attention, 4 heads, x {B}x{S}x{D}",
                     [Arg("x", (B, S, D))] + proj,
                     "flops", att_flops, "4 projections x3 + batched attention GEMMs x3"))
    F = 4 * D
    out.append(model("BLOCK", "block", f"pre-norm transformer block (MHA + GELU MLP {D}->{F}), x {B}x{S}x{D}",
                     [Arg("x", (B, S, D))] + proj +
                     [w("w1", D, F), bias("b1", F), w("w2", F, D), bias("b2", D)],
                     "flops", att_flops + 3 * 2 * _gemm(B * S, D, F), "attention + 2 MLP GEMMs, each x3"))
    B, D = sizes["mlp"]
    out.append(model("MLP", "mlp", f"3-layer GELU MLP {D} wide, batch {B}",
                     [data("x", B, D), w("w1", D, D), bias("b1", D), w("w2", D, D), bias("b2", D),
                      w("w3", D, D), bias("b3", D)],
                     "flops", 8 * _gemm(B, D, D), "3 GEMMs forward, 3 weight + 2 input gradients"))
    T_, B, In, H = sizes["rnn"]
    out.append(model("RNN", "rnn", f"tanh RNN unrolled {T_} steps, batch {B}, {In}->{H}",
                     [data("xs", T_, B, In), w("wx", In, H), w("wh", H, H), bias("b", H)],
                     "flops", T_ * (2 * _gemm(B, In, H) + 3 * _gemm(B, H, H)), "per step: x@wx x2, h@wh x3"))
    N, D, K = sizes["hvp"]
    out.append(model("HVP", "hvp_objective",
                     f"Hessian-vector product of sum(tanh(X w)^2), X {N}x{D}, w {D}x{K}",
                     [w("w", D, K), data("X", N, D), data("v", D, K)],
                     "flops", 4 * _gemm(N, D, K), "forward, reverse, and their tangents: 4 GEMMs",
                     mode="hvp"))
    B, M, K = sizes["bmm"]
    out.append(model("BMM", "bmm_tanh", f"sum(tanh(a @ b)), a {B}x{M}x{K}, b {B}x{K}x{M}",
                     [Arg("a", (B, M, K)), Arg("b", (B, K, M))], "flops", 3 * _gemm(M, K, M, B),
                     "the product forward and its two gradients"))
    return out


def make_inputs(wl: Workload, seed=0):
    """float32 (and int64 label) inputs; deterministic."""
    rng = np.random.default_rng(seed)
    out = []
    for a in wl.args:
        if a.dtype == "int64":
            out.append(rng.integers(0, 10, size=a.shape).astype(np.int64))
            continue
        v = rng.standard_normal(a.shape, dtype=np.float32)
        if a.scale != 1.0:
            v *= np.float32(a.scale)
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
    """float64 value and gradients (the model workloads': from torch in float64)."""
    if wl.kind not in NUMPY:
        return torch_reference(wl, inputs)
    args = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in inputs]
    value, grads = NUMPY[wl.kind](*args)
    return float(value), [np.asarray(g, np.float64) for g in grads]


def torch_reference(wl: Workload, inputs):
    import torch

    import models
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=arg.grad) for a, arg in zip(inputs, wl.args)]
    f = models.MODELS[wl.kind]
    if wl.params.get("mode") == "hvp":
        w, X, v = ts
        g, = torch.autograd.grad(f(torch, w, X), [w], create_graph=True)
        hv, = torch.autograd.grad(torch.sum(g * v), [w])
        return hv.numpy(), []
    loss = f(torch, *ts)
    grads = torch.autograd.grad(loss, [ts[k] for k in wl.grad_index])
    return float(loss), [g.numpy() for g in grads]


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
