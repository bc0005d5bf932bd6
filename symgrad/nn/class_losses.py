"""The general path of `nll_loss` and `cross_entropy` on class labels, with PyTorch's per-class
`weight`, `ignore_index` and `label_smoothing`, as composites of primitives:

    loss[n] = -(1 - eps) w[y[n]] logp[n, y[n]] - eps / C sum_c w[c] logp[n, c]    (y[n] != ignore_index)
    loss[n] = 0                                                                   (y[n] == ignore_index)

'mean' divides the sum by sum_n w[y[n]] over the rows not ignored (the number of those rows
when there is no weight), as PyTorch does, so a batch whose labels are all ignored gives nan.
Class probabilities as targets take `weight` and `label_smoothing` too ('mean' then divides by
the number of rows). The lean path, none of these in use, stays symgrad.losses.cross_entropy."""
from __future__ import annotations

import numpy as np

from symgrad import dtypes
from symgrad import functional as F
from symgrad.losses import one_hot
from symgrad.variable import Variable


def class_weight(fn: str, weight, n_classes: int, dtype):
    """`weight` as a (C,) Variable of the input's dtype, or a clear error."""
    if not isinstance(weight, Variable):
        if not isinstance(weight, np.ndarray):
            raise TypeError(f"{fn}(): argument 'weight' must be a Variable, not {type(weight).__name__}")
        weight = Variable(weight)
    if weight.shape != (n_classes,):
        raise ValueError(f"{fn}: weight must hold one number per class, a tensor of shape ({n_classes},); "
                         f"got shape {tuple(weight.shape)}")
    if weight.dtype != dtype:
        raise TypeError(f"{fn}: expected weight of the input's dtype {dtype}, got {weight.dtype}")
    return weight


def _check_smoothing(fn: str, label_smoothing) -> float:
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{fn}: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    return eps


def _safe_labels(fn: str, labels, n_classes: int, ignore_index: int):
    """(labels with the ignored ones set to class 0, checked to lie in [0, C); the rows kept, bool)."""
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{fn}: class labels must be integers, got {labels.dtype}")
    kept = F.ne(labels, ignore_index)
    if labels.is_concrete:
        values = labels.value()
        values = values[values != ignore_index]
        if values.size and (values.min() < 0 or values.max() >= n_classes):
            raise IndexError(f"{fn}: labels must lie in [0, {n_classes}) or equal ignore_index "
                             f"({ignore_index}), got values from {values.min()} to {values.max()}")
        return F.where(kept, labels, 0), kept
    safe = F.where(kept, labels, 0)
    return F.apply("check_range", safe, lo=0, hi=n_classes, what=f"{fn}: labels"), kept


def class_nll(fn: str, log_p, labels, shape, reduction: str, weight=None, ignore_index: int = -100,
              label_smoothing: float = 0.0):
    """The loss of (M, C) log-probabilities `log_p` and (M,) integer labels; 'none' reshapes to `shape`."""
    n_classes = log_p.shape[1]
    eps = _check_smoothing(fn, label_smoothing)
    safe, kept = _safe_labels(fn, labels, n_classes, ignore_index)
    rows = F.cast(kept, log_p.dtype)
    pick = F.mul(one_hot(safe, n_classes, log_p.dtype), F.unsqueeze(rows, 1))
    if weight is not None:
        w = class_weight(fn, weight, n_classes, log_p.dtype)
        log_p = F.mul(log_p, w)
        denominator = F.sum(F.sum(F.mul(pick, w), 1))
    else:
        denominator = F.sum(rows)
    loss = F.neg(F.sum(F.mul(log_p, pick), 1))
    if eps:
        smooth = F.neg(F.mul(F.sum(log_p, 1), rows))
        loss = F.add(F.mul(loss, 1.0 - eps), F.mul(smooth, eps / n_classes))
    if reduction == "none":
        return F.reshape(loss, shape)
    total = F.sum(loss)
    return total if reduction == "sum" else F.div(total, denominator)


def probability_cross_entropy(fn: str, input, target, reduction: str, weight=None,
                              label_smoothing: float = 0.0):
    """Cross-entropy against class probabilities `target` of the input's shape (classes in
    dimension 1, or 0 for an unbatched (C,) input)."""
    dim = 0 if input.ndim == 1 else 1
    n_classes = input.shape[dim]
    eps = _check_smoothing(fn, label_smoothing)
    if eps:
        target = F.add(F.mul(target, 1.0 - eps), eps / n_classes)
    log_p = F.log_softmax(input, dim)
    if weight is not None:
        w = class_weight(fn, weight, n_classes, input.dtype)
        if input.ndim > 2:
            w = F.reshape(w, (n_classes,) + (1,) * (input.ndim - 2))
        log_p = F.mul(log_p, w)
    loss = F.neg(F.sum(F.mul(log_p, target), dim))
    if reduction == "none":
        return loss
    return F.sum(loss) if reduction == "sum" else F.mean(loss)


def uses_general_path(target, weight, ignore_index: int, label_smoothing) -> bool:
    """Whether the labels need the general path: a weight or smoothing, a label equal to
    `ignore_index` among concrete labels, or an ignore_index set away from PyTorch's default
    -100 for symbolic ones. (Symbolic labels with the default are range-checked by the lean
    path, so a -100 reaching a compiled graph is an error there, not an ignored row.)"""
    if weight is not None or label_smoothing:
        return True
    if not dtypes.is_float(target.dtype):
        if target.is_concrete:
            return bool(np.any(target.value() == ignore_index))
        return ignore_index != -100
    return False
