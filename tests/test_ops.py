"""Every op of SPEC §4: forward against numpy, gradients against float64 finite differences
(through `sg.gradcheck` and independently through the numpy reference), higher derivatives,
and forward values and gradients against PyTorch.

Each case is written once as `fn(M, *inputs)` where `M` is the module (symgrad or torch): the
two share their API, which is the point of symgrad."""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest

import symgrad as sg
from conftest import numeric_grad, value

pytestmark = pytest.mark.usefixtures("interp_backward")

# --- input generators ------------------------------------------------------------------------
# Kinds keep finite differences honest: "grid" values are at least 0.05 away from 0, from
# +-1 and from each other (no ties at kinks), "pos" is in [0.5, 2], "nz" is away from zero.


def make(kind, shape, rng):
    n = int(np.prod(shape))
    if kind == "any":
        a = rng.uniform(-1.5, 1.5, n)
    elif kind == "pos":
        a = rng.uniform(0.5, 2.0, n)
    elif kind == "nz":
        a = rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)
    elif kind == "unit":
        a = rng.uniform(0.05, 0.95, n)
    elif kind in ("grid", "grid2"):
        k = rng.permutation(n) - n // 2
        a = 0.3 * k + (0.05 if kind == "grid" else 0.2)
    elif kind.startswith("labels"):
        classes = int(kind[6:])
        return rng.integers(0, classes, shape).astype(np.int64)
    elif kind == "ints":
        return rng.integers(-3, 4, shape).astype(np.float64)
    else:
        raise ValueError(kind)
    return a.reshape(shape)


@dataclass
class Case:
    id: str
    fn: Callable                     # fn(M, *xs): M is symgrad or torch
    ref: Callable                    # numpy reference, float64
    inputs: list                     # [(shape, kind), ...]
    grad: bool = True
    torch_fn: Callable | None = None  # when torch spells it differently
    tags: tuple = field(default=())

    def arrays(self, dtype=np.float64):
        rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        out = []
        for shape, kind in self.inputs:
            a = make(kind, shape, rng)
            out.append(a.astype(dtype) if a.dtype.kind == "f" else a)
        return out


def F(M):
    return M.nn.functional


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _lse(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x, axis):
    return x - _lse(x, axis, keepdims=True)


def _cross_entropy(logits, labels, reduction="mean"):
    picked = -_log_softmax(logits, 1)[np.arange(len(labels)), labels]
    return {"mean": picked.mean(), "sum": picked.sum(), "none": picked}[reduction]


def _bce_logits(x, t, reduction="mean"):
    loss = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


def _norm(x, p=2, axis=None, keepdims=False):
    if p == 1:
        return np.sum(np.abs(x), axis=axis, keepdims=keepdims)
    return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))


S = (2, 3)          # a small default shape
X3 = (2, 3, 4)

CASES = [
    # --- elementwise, unary
    Case("neg", lambda M, x: -x, lambda x: -x, [(S, "any")]),
    Case("neg_fn", lambda M, x: M.neg(x), lambda x: -x, [(S, "any")]),
    Case("exp", lambda M, x: M.exp(x), np.exp, [(S, "any")], tags=("second",)),
    Case("exp_method", lambda M, x: x.exp(), np.exp, [((4,), "any")]),
    Case("log", lambda M, x: M.log(x), np.log, [(S, "pos")], tags=("second",)),
    Case("sqrt", lambda M, x: M.sqrt(x), np.sqrt, [(S, "pos")], tags=("second",)),
    Case("sqrt_method", lambda M, x: x.sqrt(), np.sqrt, [((3,), "pos")]),
    Case("abs", lambda M, x: M.abs(x), np.abs, [(S, "grid")]),
    Case("abs_builtin", lambda M, x: abs(x), np.abs, [(S, "grid")]),
    Case("sin", lambda M, x: M.sin(x), np.sin, [(S, "any")], tags=("second",)),
    Case("cos", lambda M, x: M.cos(x), np.cos, [(S, "any")], tags=("second",)),
    Case("tanh", lambda M, x: M.tanh(x), np.tanh, [(S, "any")], tags=("second",)),
    Case("tanh_method", lambda M, x: x.tanh(), np.tanh, [((4,), "any")]),
    Case("sigmoid", lambda M, x: M.sigmoid(x), _sigmoid, [(S, "any")], tags=("second",)),
    Case("relu", lambda M, x: M.relu(x), lambda x: np.maximum(x, 0), [(S, "grid")]),
    Case("relu_method", lambda M, x: x.relu(), lambda x: np.maximum(x, 0), [((5,), "grid")]),
    # --- elementwise, binary (with broadcasting variants)
    Case("add", lambda M, a, b: a + b, np.add, [(S, "any"), (S, "any")]),
    Case("add_fn", lambda M, a, b: M.add(a, b), np.add, [(S, "any"), (S, "any")]),
    Case("add_bcast_row", lambda M, a, b: a + b, np.add, [((3, 4), "any"), ((4,), "any")]),
    Case("add_bcast_both", lambda M, a, b: a + b, np.add, [((2, 1, 4), "any"), ((3, 1), "any")]),
    Case("add_0d", lambda M, a, b: a + b, np.add, [(S, "any"), ((), "any")]),
    Case("add_scalar", lambda M, a: a + 2.5, lambda a: a + 2.5, [(S, "any")]),
    Case("radd_scalar", lambda M, a: 2 + a, lambda a: 2 + a, [(S, "any")]),
    Case("sub", lambda M, a, b: a - b, np.subtract, [(S, "any"), (S, "any")]),
    Case("sub_fn_bcast", lambda M, a, b: M.sub(a, b), np.subtract, [((3, 1), "any"), ((1, 4), "any")]),
    Case("rsub_scalar", lambda M, a: 1.5 - a, lambda a: 1.5 - a, [(S, "any")]),
    Case("mul", lambda M, a, b: a * b, np.multiply, [(S, "any"), (S, "any")], tags=("second",)),
    Case("mul_fn_bcast", lambda M, a, b: M.mul(a, b), np.multiply, [((2, 3, 1), "any"), ((3, 4), "any")],
         tags=("second",)),
    Case("mul_self", lambda M, a: a * a * a, lambda a: a ** 3, [(S, "any")], tags=("second",)),
    Case("div", lambda M, a, b: a / b, np.divide, [(S, "any"), (S, "nz")], tags=("second",)),
    Case("div_fn_bcast", lambda M, a, b: M.div(a, b), np.divide, [((3, 1), "any"), ((1, 4), "nz")],
         tags=("second",)),
    Case("rdiv_scalar", lambda M, a: 2.0 / a, lambda a: 2.0 / a, [(S, "nz")], tags=("second",)),
    Case("pow_int", lambda M, a: a ** 3, lambda a: a ** 3, [(S, "any")], tags=("second",)),
    Case("pow_float", lambda M, a: a ** 2.5, lambda a: a ** 2.5, [(S, "pos")], tags=("second",)),
    Case("pow_negative", lambda M, a: a ** -1.5, lambda a: a ** -1.5, [(S, "pos")], tags=("second",)),
    Case("pow_tensors", lambda M, a, b: a ** b, np.power, [(S, "pos"), (S, "any")], tags=("second",)),
    Case("pow_fn_bcast", lambda M, a, b: M.pow(a, b), np.power, [((3, 4), "pos"), ((4,), "any")],
         tags=("second",)),
    Case("rpow_scalar", lambda M, a: 2 ** a, lambda a: 2.0 ** a, [(S, "any")], tags=("second",)),
    Case("maximum", lambda M, a, b: M.maximum(a, b), np.maximum, [(S, "grid"), (S, "grid2")]),
    Case("maximum_bcast", lambda M, a, b: M.maximum(a, b), np.maximum, [((3, 1), "grid"), ((4,), "grid2")]),
    Case("minimum", lambda M, a, b: M.minimum(a, b), np.minimum, [(S, "grid"), (S, "grid2")]),
    Case("minimum_bcast", lambda M, a, b: M.minimum(a, b), np.minimum, [((2, 1, 3), "grid"),
                                                                         ((2, 3), "grid2")]),
    Case("clamp", lambda M, x: M.clamp(x, min=-0.5, max=0.7), lambda x: np.clip(x, -0.5, 0.7),
         [((3, 4), "grid")]),
    Case("clamp_min_method", lambda M, x: x.clamp(min=0.1), lambda x: np.maximum(x, 0.1), [((3, 4), "grid")]),
    Case("clamp_max_only", lambda M, x: M.clamp(x, max=0.4), lambda x: np.minimum(x, 0.4), [((6,), "grid")]),
    Case("where", lambda M, x, y: M.where(x > 0, x, y), lambda x, y: np.where(x > 0, x, y),
         [(S, "grid"), (S, "any")]),
    Case("where_bcast", lambda M, x, y: M.where(x > 0, x * 2, y), lambda x, y: np.where(x > 0, x * 2, y),
         [((3, 1), "grid"), ((1, 4), "any")]),
    # --- reductions
    Case("sum_all", lambda M, x: M.sum(x), np.sum, [(X3, "any")]),
    Case("sum_dim", lambda M, x: x.sum(1), lambda x: x.sum(1), [(X3, "any")]),
    Case("sum_negdim_keep", lambda M, x: x.sum(dim=-1, keepdim=True), lambda x: x.sum(-1, keepdims=True),
         [(X3, "any")]),
    Case("sum_tuple", lambda M, x: M.sum(x, dim=(0, 2)), lambda x: x.sum((0, 2)), [(X3, "any")]),
    Case("sum_tuple_neg_keep", lambda M, x: x.sum(dim=(-1, 0), keepdim=True),
         lambda x: x.sum((-1, 0), keepdims=True), [(X3, "any")]),
    Case("mean_all", lambda M, x: x.mean(), np.mean, [(X3, "any")]),
    Case("mean_dim", lambda M, x: M.mean(x, 0), lambda x: x.mean(0), [(X3, "any")]),
    Case("mean_tuple_keep", lambda M, x: x.mean(dim=(1, 2), keepdim=True),
         lambda x: x.mean((1, 2), keepdims=True), [(X3, "any")]),
    Case("max_all", lambda M, x: x.max(), np.max, [(X3, "grid")]),
    Case("min_all", lambda M, x: M.min(x), np.min, [(X3, "grid")]),
    Case("max_dim_values", lambda M, x: M.max(x, dim=1)[0], lambda x: x.max(1), [(X3, "grid")]),
    Case("max_negdim_keep", lambda M, x: x.max(dim=-1, keepdim=True).values,
         lambda x: x.max(-1, keepdims=True), [(X3, "grid")]),
    Case("min_dim_values", lambda M, x: x.min(0).values, lambda x: x.min(0), [(X3, "grid")]),
    Case("min_dim_keep", lambda M, x: M.min(x, 2, keepdim=True)[0], lambda x: x.min(2, keepdims=True),
         [(X3, "grid")]),
    Case("sum_0d", lambda M, x: (x * 2).sum() + x.sum(), lambda x: 3 * x, [((), "any")]),
    Case("mean_0d", lambda M, x: x.mean(), lambda x: x, [((), "any")]),
    Case("max_0d", lambda M, x: x.max() * x.min(), lambda x: x * x, [((), "any")]),
    Case("max_0d_dim", lambda M, x: x.max(0)[0] + x.min(dim=-1, keepdim=True).values, lambda x: 2 * x,
         [((), "any")]),
    Case("amax_tuple", lambda M, x: M.amax(x, dim=(0, 2)), lambda x: x.max((0, 2)), [(X3, "grid")]),
    Case("norm_all", lambda M, x: x.norm(), _norm, [(X3, "any")]),
    Case("norm_fn", lambda M, x: M.norm(x), _norm, [(S, "any")]),
    Case("norm_dim", lambda M, x: x.norm(dim=1), lambda x: _norm(x, axis=1), [(X3, "any")]),
    Case("norm_dim_keep", lambda M, x: M.norm(x, dim=-1, keepdim=True),
         lambda x: _norm(x, axis=-1, keepdims=True), [(X3, "any")]),
    Case("norm_p1", lambda M, x: M.norm(x, p=1, dim=1), lambda x: _norm(x, 1, axis=1), [((3, 4), "grid")]),
    Case("logsumexp_all", lambda M, x: M.logsumexp(x, dim=None), _lse, [(S, "any")],
         torch_fn=lambda torch, x: torch.logsumexp(x, dim=tuple(range(x.ndim)))),
    Case("logsumexp_dim", lambda M, x: M.logsumexp(x, dim=1), lambda x: _lse(x, 1), [(X3, "any")],
         tags=("second",)),
    Case("logsumexp_negdim_keep", lambda M, x: x.logsumexp(-1, keepdim=True),
         lambda x: _lse(x, -1, keepdims=True), [(X3, "any")]),
    Case("logsumexp_tuple", lambda M, x: M.logsumexp(x, dim=(0, 2)), lambda x: _lse(x, (0, 2)),
         [(X3, "any")]),
    Case("softmax_last", lambda M, x: M.softmax(x, dim=-1), lambda x: _softmax(x, -1), [((3, 4), "any")],
         tags=("second",)),
    Case("softmax_dim0", lambda M, x: x.softmax(0), lambda x: _softmax(x, 0), [((3, 4), "any")]),
    Case("softmax_3d", lambda M, x: F(M).softmax(x, dim=1), lambda x: _softmax(x, 1), [(X3, "any")]),
    Case("log_softmax_last", lambda M, x: M.log_softmax(x, dim=-1), lambda x: _log_softmax(x, -1),
         [((3, 4), "any")], tags=("second",)),
    Case("log_softmax_dim0", lambda M, x: F(M).log_softmax(x, dim=0), lambda x: _log_softmax(x, 0),
         [((3, 4), "any")]),
    # --- linear algebra
    Case("matmul_1d_1d", lambda M, a, b: a @ b, np.matmul, [((3,), "any"), ((3,), "any")]),
    Case("matmul_2d_1d", lambda M, a, b: a @ b, np.matmul, [((2, 3), "any"), ((3,), "any")]),
    Case("matmul_1d_2d", lambda M, a, b: M.matmul(a, b), np.matmul, [((3,), "any"), ((3, 4), "any")]),
    Case("matmul_2d", lambda M, a, b: a @ b, np.matmul, [((2, 3), "any"), ((3, 4), "any")],
         tags=("second",)),
    Case("matmul_batched", lambda M, a, b: M.matmul(a, b), np.matmul,
         [((2, 2, 3), "any"), ((2, 3, 4), "any")]),
    Case("matmul_batch_bcast", lambda M, a, b: a @ b, np.matmul, [((2, 1, 2, 3), "any"), ((3, 3, 2), "any")]),
    Case("matmul_batch_2d", lambda M, a, b: a @ b, np.matmul, [((2, 2, 3), "any"), ((3, 4), "any")]),
    Case("matmul_1d_batch", lambda M, a, b: a @ b, np.matmul, [((3,), "any"), ((2, 3, 4), "any")]),
    Case("mm", lambda M, a, b: M.mm(a, b), np.matmul, [((2, 3), "any"), ((3, 2), "any")]),
    Case("transpose", lambda M, x: x.transpose(0, 1), lambda x: np.swapaxes(x, 0, 1), [(X3, "any")]),
    Case("transpose_neg", lambda M, x: M.transpose(x, -1, -3), lambda x: np.swapaxes(x, -1, -3),
         [(X3, "any")]),
    Case("T", lambda M, x: x.T, lambda x: x.T, [((2, 3), "any")]),
    Case("t", lambda M, x: x.t(), lambda x: x.T, [((2, 3), "any")]),
    Case("permute", lambda M, x: x.permute(2, 0, 1), lambda x: np.transpose(x, (2, 0, 1)), [(X3, "any")]),
    Case("permute_fn", lambda M, x: M.permute(x, (1, 2, 0)) * 2, lambda x: np.transpose(x, (1, 2, 0)) * 2,
         [(X3, "any")]),
    # --- shape
    Case("reshape", lambda M, x: x.reshape(4, 6), lambda x: x.reshape(4, 6), [(X3, "any")]),
    Case("reshape_neg1", lambda M, x: M.reshape(x, (-1, 2)), lambda x: x.reshape(-1, 2), [(X3, "any")]),
    Case("view", lambda M, x: x.view(2, -1) * 3, lambda x: x.reshape(2, -1) * 3, [(X3, "any")]),
    Case("view_flat", lambda M, x: x.view(-1), lambda x: x.reshape(-1), [(S, "any")]),
    Case("squeeze_all", lambda M, x: x.squeeze(), lambda x: x.squeeze(), [((1, 3, 1, 2), "any")]),
    Case("squeeze_dim", lambda M, x: M.squeeze(x, 2), lambda x: x.squeeze(2), [((1, 3, 1, 2), "any")]),
    Case("squeeze_negdim", lambda M, x: x.squeeze(-4), lambda x: x.squeeze(0), [((1, 3, 1, 2), "any")]),
    Case("squeeze_noop", lambda M, x: x.squeeze(1) * 1.5, lambda x: x * 1.5, [((1, 3, 1, 2), "any")]),
    Case("unsqueeze", lambda M, x: x.unsqueeze(0), lambda x: x[None], [(S, "any")]),
    Case("unsqueeze_neg", lambda M, x: M.unsqueeze(x, -1), lambda x: x[..., None], [(S, "any")]),
    Case("unsqueeze_mid", lambda M, x: x.unsqueeze(1), lambda x: x[:, None], [(S, "any")]),
    Case("expand", lambda M, x: x.expand(3, 4), lambda x: np.broadcast_to(x, (3, 4)), [((3, 1), "any")]),
    Case("expand_new_dims", lambda M, x: x.expand(2, 3, 4), lambda x: np.broadcast_to(x, (2, 3, 4)),
         [((3, 1), "any")]),
    Case("expand_minus1", lambda M, x: x.expand(-1, 4), lambda x: np.broadcast_to(x, (3, 4)),
         [((3, 1), "any")]),
    Case("broadcast_to", lambda M, x: M.broadcast_to(x, (2, 3, 4)), lambda x: np.broadcast_to(x, (2, 3, 4)),
         [((4,), "any")]),
    Case("flatten", lambda M, x: x.flatten(), lambda x: x.reshape(-1), [(X3, "any")]),
    Case("flatten_start", lambda M, x: M.flatten(x, 1), lambda x: x.reshape(2, 12), [(X3, "any")]),
    Case("flatten_range", lambda M, x: x.flatten(0, 1), lambda x: x.reshape(6, 4), [(X3, "any")]),
    # --- indexing and slicing
    Case("index_slice_int", lambda M, x: x[1:, 0], lambda x: x[1:, 0], [((3, 4), "any")]),
    Case("index_ellipsis_none", lambda M, x: x[..., None], lambda x: x[..., None], [((3, 4), "any")]),
    Case("index_step", lambda M, x: x[::2], lambda x: x[::2], [((5, 2), "any")]),
    Case("index_int", lambda M, x: x[1], lambda x: x[1], [(X3, "any")]),
    Case("index_negative", lambda M, x: x[-1, :, -2], lambda x: x[-1, :, -2], [(X3, "any")]),
    Case("index_range_step", lambda M, x: x[:, 1:4:2], lambda x: x[:, 1:4:2], [((3, 5), "any")]),
    Case("index_none_mid", lambda M, x: x[None, :, 1], lambda x: x[None, :, 1], [((3, 4), "any")]),
    Case("index_ellipsis_last", lambda M, x: x[..., 1:3], lambda x: x[..., 1:3], [(X3, "any")]),
    Case("index_0d", lambda M, x: x[1, 2] * x[0, 0], lambda x: x[1, 2] * x[0, 0], [((3, 4), "any")]),
    Case("index_sum_overlap", lambda M, x: x[1:] + x[:-1], lambda x: x[1:] + x[:-1], [((4, 2), "any")]),
    # --- cat and stack
    Case("cat0", lambda M, a, b: M.cat([a, b]), lambda a, b: np.concatenate([a, b]),
         [((2, 3), "any"), ((1, 3), "any")]),
    Case("cat_last", lambda M, a, b: M.cat((a, b, a), dim=-1), lambda a, b: np.concatenate([a, b, a], -1),
         [((2, 3), "any"), ((2, 2), "any")]),
    Case("stack0", lambda M, a, b: M.stack([a, b]), lambda a, b: np.stack([a, b]),
         [((2, 3), "any"), ((2, 3), "any")]),
    Case("stack_last", lambda M, a, b: M.stack([a, b], dim=-1), lambda a, b: np.stack([a, b], -1),
         [((2, 3), "any"), ((2, 3), "any")]),
    Case("stack_mid", lambda M, a, b: M.stack((a, b), 1), lambda a, b: np.stack([a, b], 1),
         [((2, 3), "any"), ((2, 3), "any")]),
    # --- losses (nn.functional names)
    Case("mse_loss", lambda M, a, b: F(M).mse_loss(a, b), lambda a, b: np.mean((a - b) ** 2),
         [((3, 4), "any"), ((3, 4), "any")]),
    Case("mse_loss_sum", lambda M, a, b: F(M).mse_loss(a, b, reduction="sum"),
         lambda a, b: np.sum((a - b) ** 2), [((5,), "any"), ((5,), "any")]),
    Case("mse_loss_none", lambda M, a, b: F(M).mse_loss(a, b, reduction="none"),
         lambda a, b: (a - b) ** 2, [((2, 3), "any"), ((2, 3), "any")]),
    Case("cross_entropy", lambda M, x, y: F(M).cross_entropy(x, y), _cross_entropy,
         [((4, 3), "any"), ((4,), "labels3")]),
    Case("cross_entropy_sum", lambda M, x, y: F(M).cross_entropy(x, y, reduction="sum"),
         lambda x, y: _cross_entropy(x, y, "sum"), [((3, 5), "any"), ((3,), "labels5")]),
    Case("cross_entropy_none", lambda M, x, y: F(M).cross_entropy(x, y, reduction="none"),
         lambda x, y: _cross_entropy(x, y, "none"), [((3, 4), "any"), ((3,), "labels4")]),
    Case("bce_with_logits", lambda M, x, t: F(M).binary_cross_entropy_with_logits(x, t), _bce_logits,
         [((3, 2), "any"), ((3, 2), "unit")]),
    Case("bce_with_logits_none",
         lambda M, x, t: F(M).binary_cross_entropy_with_logits(x, t, reduction="none"),
         lambda x, t: _bce_logits(x, t, "none"), [((4,), "nz"), ((4,), "unit")]),
    Case("F_relu", lambda M, x: F(M).relu(x), lambda x: np.maximum(x, 0), [(S, "grid")]),
    Case("F_sigmoid", lambda M, x: F(M).sigmoid(x), _sigmoid, [(S, "any")]),
    Case("F_tanh", lambda M, x: F(M).tanh(x), np.tanh, [(S, "any")]),
    Case("F_leaky_relu", lambda M, x: F(M).leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x),
         [(S, "grid")]),
    Case("F_linear", lambda M, x, w, b: F(M).linear(x, w, b), lambda x, w, b: x @ w.T + b,
         [((2, 3), "any"), ((4, 3), "any"), ((4,), "any")]),
    # --- compositions that exercise several pullbacks at once
    Case("mlp", lambda M, x, w, b: M.tanh(x @ w + b).sum(1), lambda x, w, b: np.tanh(x @ w + b).sum(1),
         [((2, 3), "any"), ((3, 4), "any"), ((4,), "any")], tags=("second",)),
    Case("reuse", lambda M, x: M.exp(x) * M.sin(x) + x / (x * x + 1.0),
         lambda x: np.exp(x) * np.sin(x) + x / (x * x + 1.0), [(S, "any")], tags=("second",)),
]

COMPARISONS = [
    ("lt", lambda M, a, b: a < b, np.less),
    ("le", lambda M, a, b: a <= b, np.less_equal),
    ("gt", lambda M, a, b: a > b, np.greater),
    ("ge", lambda M, a, b: a >= b, np.greater_equal),
    ("eq", lambda M, a, b: a == b, np.equal),
    ("ne", lambda M, a, b: a != b, np.not_equal),
    ("lt_fn", lambda M, a, b: M.lt(a, b), np.less),
    ("le_fn", lambda M, a, b: M.le(a, b), np.less_equal),
    ("gt_fn", lambda M, a, b: M.gt(a, b), np.greater),
    ("ge_fn", lambda M, a, b: M.ge(a, b), np.greater_equal),
    ("eq_fn", lambda M, a, b: M.eq(a, b), np.equal),
    ("ne_fn", lambda M, a, b: M.ne(a, b), np.not_equal),
]

BY_ID = {c.id: c for c in CASES}
assert len(BY_ID) == len(CASES), "case ids must be unique"
GRAD_CASES = [c for c in CASES if c.grad]
SECOND = [c for c in CASES if "second" in c.tags]


def sg_inputs(arrays, requires_grad=True):
    return [sg.tensor(a, requires_grad=requires_grad and a.dtype.kind == "f") for a in arrays]


def weights_for(shape, dtype=np.float64):
    return np.random.default_rng(123).uniform(0.5, 1.5, shape).astype(dtype)


# --- forward ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_forward_float64_matches_numpy(case):
    arrays = case.arrays(np.float64)
    out = case.fn(sg, *sg_inputs(arrays, requires_grad=False))
    expected = np.asarray(case.ref(*arrays))
    assert out.shape == expected.shape
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_forward_float32_matches_numpy(case):
    arrays = case.arrays(np.float32)
    xs = sg_inputs(arrays)
    out = case.fn(sg, *xs)
    expected = np.asarray(case.ref(*[a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]))
    assert out.dtype == np.float32
    assert out.shape == expected.shape
    assert out.requires_grad
    assert out.grad_fn is not None and not out.is_leaf
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, fn, ref", COMPARISONS, ids=[c[0] for c in COMPARISONS])
@pytest.mark.parametrize("shapes", [((2, 3), (2, 3)), ((3, 1), (4,)), ((2, 3), None)],
                         ids=["same", "bcast", "scalar"])
def test_comparisons(name, fn, ref, shapes):
    r = np.random.default_rng(7)
    a = r.integers(-2, 3, shapes[0]).astype(np.float32)      # integer-valued: ties happen
    b = r.integers(-2, 3, shapes[1]).astype(np.float32) if shapes[1] else 1.0
    xa = sg.tensor(a, requires_grad=True)
    xb = sg.tensor(b, requires_grad=True) if shapes[1] else b
    out = fn(sg, xa, xb)
    expected = ref(a, b)
    assert out.dtype == np.bool_
    assert out.requires_grad is False and out.grad_fn is None
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dim, keepdim", [(0, False), (1, True), (-1, False), (2, True)])
def test_max_min_with_dim_return_values_and_indices(op, dim, keepdim):
    x = BY_ID["max_all"].arrays(np.float32)[0]
    out = getattr(sg, op)(sg.tensor(x), dim=dim, keepdim=keepdim)
    values, indices = out
    assert out.values is values and out.indices is indices
    np_arg = getattr(np, "arg" + op)(x, axis=dim)
    np_val = getattr(np, op)(x, axis=dim)
    if keepdim:
        np_arg, np_val = np.expand_dims(np_arg, dim), np.expand_dims(np_val, dim)
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices.numpy(), np_arg)
    np.testing.assert_array_equal(values.numpy(), np_val)
    # method form
    v2, i2 = getattr(sg.tensor(x), op)(dim, keepdim)
    np.testing.assert_array_equal(i2.numpy(), np_arg)


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_with_dim_and_ties_send_the_gradient_to_the_index(op, torch):
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [-1.0, -1.0, -1.0]], np.float32)
    for dim in (0, 1):
        x, t = sg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        v, i = getattr(x, op)(dim)
        tv, ti = getattr(t, op)(dim)
        np.testing.assert_array_equal(i.numpy(), ti.numpy())
        np.testing.assert_array_equal(v.detach().numpy(), tv.detach().numpy())
        w = np.array([1.0, 2.0, 3.0], np.float32)
        v.backward(sg.tensor(w))
        tv.backward(torch.tensor(w))
        np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())
        # without a dim (and amax/amin) the gradient is shared among the tied elements
        x, t = sg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        (getattr(x, op)() + getattr(sg, "a" + op)(x, dim).sum()).backward()
        (getattr(t, op)() + getattr(torch, "a" + op)(t, dim).sum()).backward()
        np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


def test_max_with_dim_prints_like_torch(torch):
    a = np.array([[1.0, 5.0], [7.0, 2.0]], np.float32)
    for op in ("max", "min"):
        ours = str(getattr(sg.tensor(a, requires_grad=True), op)(1))
        theirs = str(getattr(torch.tensor(a, requires_grad=True), op)(1))
        assert ours == theirs


@pytest.mark.parametrize("lo, hi", [(2.5, 1.0), (-0.5, 0.5), (0.0, 0.0)])
def test_clamp_bounds(lo, hi, torch):
    a = np.array([-1.0, 0.0, 0.25, 0.5, 1.0, 3.0], np.float32)
    x, t = sg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, ty = sg.clamp(x, lo, hi), torch.clamp(t, lo, hi)
    np.testing.assert_array_equal(y.detach().numpy(), np.minimum(np.maximum(a, lo), hi))
    np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


@pytest.mark.parametrize("a, b", [(np.array([5.0, -3.0, 7.5, -0.5, 6.0]), 2.0),
                                  (np.array([5.0, -3.0, 7.5]), np.array([-2.0, 2.0, 0.5])),
                                  (np.array([5, -3, 7, -8]), 2),
                                  (np.array([5, -3, 7]), np.array([-2, 2, 3])),
                                  (np.array([5, -3]), 2.5)])
def test_floor_division(a, b):
    x = sg.tensor(a)
    y = sg.tensor(b) if isinstance(b, np.ndarray) else b
    out = x // y
    expected = np.floor_divide(a, b)
    np.testing.assert_array_equal(out.numpy(), expected)
    assert out.dtype.kind == expected.dtype.kind
    if isinstance(b, np.ndarray):
        np.testing.assert_array_equal((a[0].item() // y).numpy(), np.floor_divide(a[0], b))


def test_max_min_without_dim_return_one_value():
    x = BY_ID["max_all"].arrays(np.float32)[0]
    v = sg.tensor(x)
    assert v.max().shape == () and v.max().item() == x.max()
    assert sg.min(v).shape == () and sg.min(v).item() == x.min()
    assert v.argmax().item() == int(np.argmax(x))
    assert v.argmin().item() == int(np.argmin(x))


def test_logsumexp_of_infinities(torch):
    inf = np.inf
    a = np.array([[-inf, -inf], [inf, 1.0], [-inf, 2.0], [1000.0, 1000.0]], np.float32)
    ours = sg.logsumexp(sg.tensor(a), 1).numpy()
    np.testing.assert_array_equal(ours, torch.logsumexp(torch.tensor(a), 1).numpy())
    np.testing.assert_allclose(ours[2:], [2.0, 1000.0 + np.log(2)], rtol=1e-6)


def test_reductions_of_integers():
    a = np.arange(12, dtype=np.int64).reshape(3, 4)
    x = sg.tensor(a)
    assert x.sum().dtype == np.int64 and x.sum().item() == 66
    np.testing.assert_array_equal(x.sum(1).numpy(), a.sum(1))
    np.testing.assert_array_equal(x.max(0).values.numpy(), a.max(0))
    np.testing.assert_array_equal(sg.tensor(a > 5).sum().numpy(), 6)
    np.testing.assert_allclose(x.float().mean().item(), a.mean())


# --- gradients against finite differences -----------------------------------------------------


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: c.id)
def test_gradcheck(case):
    assert sg.gradcheck(lambda *xs: case.fn(sg, *xs), case.arrays(np.float64))


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: c.id)
def test_grad_matches_finite_differences_of_numpy_reference(case):
    """Independent of sg.gradcheck: the numeric side uses only the numpy reference."""
    arrays = case.arrays(np.float64)
    xs = sg_inputs(arrays)
    out = case.fn(sg, *xs)
    w = weights_for(out.shape)
    floats = [n for n, a in enumerate(arrays) if a.dtype.kind == "f"]
    grads = sg.grad((out * sg.tensor(w)).sum(), [xs[n] for n in floats])
    for n, g in zip(floats, grads):
        numeric = numeric_grad(lambda *a: float(np.sum(case.ref(*a) * w)), arrays, n)
        assert g.shape == arrays[n].shape
        np.testing.assert_allclose(g.detach().numpy(), numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: c.id)
def test_backward_accumulates_into_leaves(case):
    arrays = case.arrays(np.float64)
    xs = sg_inputs(arrays)
    out = case.fn(sg, *xs)
    w = weights_for(out.shape)
    expected = sg.grad((out * sg.tensor(w)).sum(), [x for x in xs if x.requires_grad])
    out.backward(sg.tensor(w))
    out.backward(sg.tensor(w))        # a static graph: backward again, gradients add up
    for x, g in zip([x for x in xs if x.requires_grad], expected):
        assert x.grad is not None and x.grad.shape == x.shape and x.grad.dtype == x.dtype
        np.testing.assert_allclose(x.grad.detach().numpy(), 2 * g.detach().numpy(), rtol=1e-12, atol=1e-12)
    for x in xs:
        if not x.requires_grad:
            assert x.grad is None


def test_gradcheck_catches_a_wrong_derivative(monkeypatch):
    """sg.gradcheck is only worth its passes if it fails on a wrong pullback."""
    from symgrad.ops import OPS
    import symgrad.functional as Fn
    monkeypatch.setattr(OPS["sin"], "vjp", lambda g, node, needs: (Fn.mul(g, Fn.sin(node.inputs[0])),))
    with pytest.raises(AssertionError, match="finite differences"):
        sg.gradcheck(lambda x: sg.sin(x), [np.array([0.3, 1.1])])
    assert sg.gradcheck(lambda x: sg.sin(x), [np.array([0.3, 1.1])], raise_exception=False) is False


# --- higher derivatives -----------------------------------------------------------------------


def _first_grads(case, arrays, w):
    xs = sg_inputs(arrays)
    out = case.fn(sg, *xs)
    fl = [x for x in xs if x.requires_grad]
    return xs, fl, sg.grad((out * sg.tensor(w)).sum(), fl)


@pytest.mark.parametrize("case", SECOND, ids=lambda c: c.id)
def test_second_derivative_matches_finite_differences(case):
    arrays = case.arrays(np.float64)
    w = weights_for(np.asarray(case.ref(*arrays)).shape)
    xs, fl, g = _first_grads(case, arrays, w)
    floats = [n for n, a in enumerate(arrays) if a.dtype.kind == "f"]
    # d/dx_j of sum(d f / d x_0): the gradient of a gradient, for every input j
    second = sg.grad(g[0].sum(), fl, allow_unused=True)

    def first_sum(*a):
        _, _, gg = _first_grads(case, list(a), w)
        return float(gg[0].detach().numpy().sum())

    for n, h in zip(floats, second):
        numeric = numeric_grad(first_sum, arrays, n, eps=1e-5)
        got = np.zeros_like(arrays[n]) if h is None else h.detach().numpy()
        np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", SECOND, ids=lambda c: c.id)
def test_second_derivative_matches_torch(case, torch):
    arrays = case.arrays(np.float64)
    w = weights_for(np.asarray(case.ref(*arrays)).shape)
    _, fl, g = _first_grads(case, arrays, w)
    ours = sg.grad(g[0].sum(), fl, allow_unused=True)
    ts = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    tfl = [t for t in ts if t.requires_grad]
    tout = (case.torch_fn or case.fn)(torch, *ts)
    tg = torch.autograd.grad((tout * torch.tensor(w)).sum(), tfl, create_graph=True)
    theirs = torch.autograd.grad(tg[0].sum(), tfl, allow_unused=True)
    for a, b, x in zip(ours, theirs, tfl):
        a = np.zeros(x.shape) if a is None else a.detach().numpy()
        b = np.zeros(x.shape) if b is None else b.numpy()
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_second_derivative_of_sin_is_minus_sin():
    a = np.linspace(-2, 2, 7)
    x = sg.tensor(a, requires_grad=True)
    (g,) = sg.grad(sg.sin(x).sum(), x)
    (h,) = sg.grad(g.sum(), x)
    np.testing.assert_allclose(g.detach().numpy(), np.cos(a), rtol=1e-12)
    np.testing.assert_allclose(h.detach().numpy(), -np.sin(a), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("fn, d3", [
    (sg.sin, lambda a: -np.cos(a)),
    (sg.exp, np.exp),
    (lambda x: x ** 4, lambda a: 24 * a),
    (sg.tanh, lambda a: -2 * (1 - np.tanh(a) ** 2) * (1 - 3 * np.tanh(a) ** 2)),
    (sg.sigmoid, lambda a: (s := _sigmoid(a)) * (1 - s) * (1 - 6 * s + 6 * s * s)),
    (sg.log, lambda a: 2 / a ** 3),
], ids=["sin", "exp", "pow4", "tanh", "sigmoid", "log"])
def test_third_derivative(fn, d3):
    a = np.array([0.3, 0.9, 1.7])
    x = sg.tensor(a, requires_grad=True)
    (g1,) = sg.grad(fn(x).sum(), x)
    (g2,) = sg.grad(g1.sum(), x)
    (g3,) = sg.grad(g2.sum(), x)
    np.testing.assert_allclose(g3.detach().numpy(), d3(a), rtol=1e-10)


def test_third_derivative_matches_torch(torch):
    a = np.array([[0.3, -0.9], [1.7, 0.2]])

    def f(M, x):
        return (M.tanh(x @ x) * M.sigmoid(x)).sum()

    x = sg.tensor(a, requires_grad=True)
    g = x
    gs = []
    y = f(sg, x)
    for _ in range(3):
        (g,) = sg.grad(y, x)
        gs.append(g.detach().numpy())
        y = g.sum()
    t = torch.tensor(a, requires_grad=True)
    y = f(torch, t)
    for ours in gs:
        (tg,) = torch.autograd.grad(y, t, create_graph=True)
        np.testing.assert_allclose(ours, tg.detach().numpy(), rtol=1e-9, atol=1e-12)
        y = tg.sum()


def test_mixed_second_derivative():
    # f = sum(a * b**2): df/db = 2ab, d/da sum(2ab) = 2b
    av, bv = np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.7, -1.2])
    a, b = sg.tensor(av, requires_grad=True), sg.tensor(bv, requires_grad=True)
    (gb,) = sg.grad((a * b ** 2).sum(), b)
    ga, gb2 = sg.grad(gb.sum(), [a, b])
    np.testing.assert_allclose(ga.detach().numpy(), 2 * bv)
    np.testing.assert_allclose(gb2.detach().numpy(), 2 * av)


def test_grad_with_respect_to_an_intermediate_and_its_leaf():
    # an input upstream of another: both get their full gradient (retain_grad relies on it)
    av = np.array([0.2, -0.4, 0.9])
    x = sg.tensor(av, requires_grad=True)
    h = x * 2 + 1
    z = sg.tanh(h)
    gx, gh, gz = sg.grad((z ** 2).sum(), [x, h, z])
    t = np.tanh(2 * av + 1)
    np.testing.assert_allclose(gz.detach().numpy(), 2 * t, rtol=1e-12)
    np.testing.assert_allclose(gh.detach().numpy(), 2 * t * (1 - t ** 2), rtol=1e-12)
    np.testing.assert_allclose(gx.detach().numpy(), 4 * t * (1 - t ** 2), rtol=1e-12)


def test_retain_grad_with_leaf_upstream():
    av = np.array([0.2, -0.4, 0.9], np.float32)
    x = sg.tensor(av, requires_grad=True)
    h = x * 2 + 1
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * (2 * av + 1), rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), 4 * (2 * av + 1), rtol=1e-6)


def test_backward_through_a_gradient():
    # Variable.backward on a graph made by sg.grad: d/dx sum(d/dx x^3) = 6x
    av = np.array([0.5, -1.0, 2.0], np.float32)
    x = sg.tensor(av, requires_grad=True)
    (g,) = sg.grad((x ** 3).sum(), x)
    np.testing.assert_allclose(g.detach().numpy(), 3 * av ** 2, rtol=1e-6)
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * av, rtol=1e-6)


# --- against PyTorch -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, rtol, atol", [(np.float32, 1e-4, 1e-5), (np.float64, 1e-10, 1e-12)],
                         ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_matches_torch(case, dtype, rtol, atol, torch):
    arrays = case.arrays(dtype)
    xs = sg_inputs(arrays, requires_grad=case.grad)
    ts = [torch.tensor(a, requires_grad=case.grad and a.dtype.kind == "f") for a in arrays]
    out = case.fn(sg, *xs)
    tout = (case.torch_fn or case.fn)(torch, *ts)
    assert tuple(out.shape) == tuple(tout.shape)
    assert str(out.dtype) == str(tout.dtype).replace("torch.", "symgrad.")
    np.testing.assert_allclose(out.detach().numpy(), value(tout), rtol=rtol, atol=atol)
    if not case.grad:
        return
    w = weights_for(out.shape, dtype)
    out.backward(sg.tensor(w))
    tout.backward(torch.tensor(w))
    for x, t in zip(xs, ts):
        if t.requires_grad:
            assert x.grad is not None
            np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)
        else:
            assert x.grad is None


GRAD_FN_NAMES = ["neg", "exp", "log", "sqrt", "abs", "sin", "cos", "tanh", "sigmoid", "relu", "add",
                 "add_scalar", "sub", "mul", "div", "pow_int", "pow_tensors", "where", "sum_all",
                 "sum_dim", "mean_all", "mean_dim", "max_dim_values", "matmul_2d", "mm", "permute",
                 "reshape", "view", "expand", "index_int", "index_slice_int", "cat0", "stack0",
                 "softmax_last", "log_softmax_last", "mse_loss", "cross_entropy", "transpose", "T",
                 "t", "squeeze_dim", "unsqueeze", "logsumexp_dim", "bce_with_logits", "rpow_scalar",
                 "rsub_scalar", "max_all", "min_all", "squeeze_all", "clamp", "clamp_min_method",
                 "flatten", "flatten_start", "norm_dim", "amax_tuple", "maximum", "minimum", "neg_fn",
                 "sum_tuple", "mean_tuple_keep", "min_dim_values", "sum_0d", "max_0d", "max_0d_dim"]


@pytest.mark.parametrize("case_id", GRAD_FN_NAMES)
def test_grad_fn_names_match_torch(case_id, torch):
    case = BY_ID[case_id]
    arrays = case.arrays(np.float32)
    out = case.fn(sg, *sg_inputs(arrays))
    tout = case.fn(torch, *[torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays])
    assert type(out.grad_fn).__name__ == type(tout.grad_fn).__name__


def test_nn_functional_names():
    import symgrad.nn.functional as SF
    for name in ["relu", "sigmoid", "tanh", "softmax", "log_softmax", "mse_loss", "cross_entropy",
                 "binary_cross_entropy_with_logits"]:
        assert callable(getattr(SF, name))
    assert SF.cross_entropy is sg.cross_entropy
    assert SF.mse_loss is sg.mse_loss
    assert SF.binary_cross_entropy_with_logits is sg.binary_cross_entropy_with_logits


def test_dtype_promotion_like_torch(torch):
    cases = [
        (np.arange(3, dtype=np.int64), 2.5),
        (np.arange(3, dtype=np.int64), 2),
        (np.arange(3, dtype=np.int32), np.arange(3, dtype=np.int64)),
        (np.ones(3, np.float32), np.ones(3, np.float64)),
        (np.ones(3, np.float32), np.arange(3, dtype=np.int64)),
        (np.array([True, False]), 1),
        (np.array([True, False]), 1.5),
    ]
    for a, b in cases:
        for op in ["add", "mul", "sub"]:
            if op == "sub" and a.dtype == np.bool_:
                continue
            ours = getattr(sg, op)(sg.tensor(a), sg.tensor(b) if isinstance(b, np.ndarray) else b)
            theirs = getattr(torch, op)(torch.tensor(a), torch.tensor(b) if isinstance(b, np.ndarray) else b)
            assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "symgrad."), (a.dtype, b, op)
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        ours, theirs = sg.tensor(a) / 2, torch.tensor(a) / 2
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "symgrad.")
        np.testing.assert_allclose(ours.numpy(), theirs.numpy())


# --- property tests: random broadcasting and reduction dims, against torch ------------------------
# hypothesis is a test extra; without it these are not defined.

try:
    from hypothesis import given, settings, strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:
    given = None

if given is not None:
    BINARY = {"add": lambda M, a, b: a + b, "sub": lambda M, a, b: a - b, "mul": lambda M, a, b: a * b,
              "div": lambda M, a, b: a / (b * b + 0.5), "maximum": lambda M, a, b: M.maximum(a, b),
              "pow": lambda M, a, b: (a * a + 0.5) ** b, "where": lambda M, a, b: M.where(a > b, a * b, b)}

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
           op=st.sampled_from(sorted(BINARY)), seed=st.integers(0, 2 ** 16))
    def test_broadcasting_matches_torch(shapes, op, seed):
        torch = pytest.importorskip("torch")
        r = np.random.default_rng(seed)
        a, b = (r.uniform(-1, 1, s) for s in shapes.input_shapes)
        xs = [sg.tensor(a, requires_grad=True), sg.tensor(b, requires_grad=True)]
        ts = [torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)]
        out, tout = BINARY[op](sg, *xs), BINARY[op](torch, *ts)
        assert out.shape == tuple(tout.shape) == shapes.result_shape
        np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-12, atol=1e-12)
        w = r.uniform(0.5, 1.5, out.shape)
        out.backward(sg.tensor(w))
        tout.backward(torch.tensor(w))
        for x, t in zip(xs, ts):
            assert x.grad.shape == x.shape
            np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)

    REDUCE = {"sum": lambda M, x, d, k: x.sum(dim=d, keepdim=k),
              "mean": lambda M, x, d, k: x.mean(dim=d, keepdim=k),
              "norm": lambda M, x, d, k: (x.norm(dim=d, keepdim=k) if M is sg else   # torch.norm reads
                                          M.linalg.vector_norm(x, dim=d, keepdim=k)),  # a 2-tuple as a matrix
              "amax": lambda M, x, d, k: M.amax(x, dim=d, keepdim=k),
              "logsumexp": lambda M, x, d, k: M.logsumexp(x, dim=d, keepdim=k)}

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=3), data=st.data(),
           op=st.sampled_from(sorted(REDUCE)), keepdim=st.booleans())
    def test_reductions_over_random_dims_match_torch(shape, data, op, keepdim):
        torch = pytest.importorskip("torch")
        nd = len(shape)
        dims = data.draw(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd,
                                  unique_by=lambda d: d % nd))
        dim = dims[0] if len(dims) == 1 and data.draw(st.booleans()) else tuple(dims)
        a = np.random.default_rng(len(shape)).permutation(int(np.prod(shape))).reshape(shape) * 0.1 + 0.05
        x, t = sg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        out, tout = REDUCE[op](sg, x, dim, keepdim), REDUCE[op](torch, t, dim, keepdim)
        assert out.shape == tuple(tout.shape)
        np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-12)
        w = np.linspace(0.5, 1.5, out.numel()).reshape(out.shape)
        out.backward(sg.tensor(w))
        tout.backward(torch.tensor(w))
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)
