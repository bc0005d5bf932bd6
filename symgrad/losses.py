"""Losses, as composites of primitives: mean squared error, cross-entropy on integer labels
(checked to lie in range, also by the generated code), and binary cross-entropy on logits."""
from __future__ import annotations

from symgrad.hints import DTypeLike, TensorLike
from symgrad.variable import Variable
from symgrad.functional import (_mark, apply, as_variable, cast, composite, eq, log_softmax, mean, mul,
                                neg, sub, sum, takes_tensors, unsqueeze)


def _reduce_loss(x, reduction):
    if reduction == "mean":
        return mean(x)
    if reduction == "sum":
        return sum(x)
    if reduction == "none":
        return x
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


@composite("MseLoss")
def mse_loss(input: Variable, target: Variable, reduction: str = "mean") -> Variable:
    """The mean (or with `reduction` the sum, or none) of (input - target) ** 2, elementwise.

    `input` and `target` have one shape. PyTorch: `torch.nn.functional.mse_loss`."""
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} and target shape {target.shape} differ")
    d = sub(input, target)
    return _reduce_loss(mul(d, d), reduction)


def one_hot(labels: TensorLike, num_classes: int, dtype: DTypeLike = "int64") -> Variable:
    """Returns `labels` (integers in [0, num_classes)) as one-hot rows: a new last dimension of size
    `num_classes`, 1 at each label and 0 elsewhere, of `dtype`.

    PyTorch: `torch.nn.functional.one_hot` (which has no `dtype`: its result is int64)."""
    labels = as_variable(labels)
    classes = apply("iota", shape=(1,) * labels.ndim + (num_classes,), axis=labels.ndim, dtype="int64")
    return cast(eq(unsqueeze(cast(labels, "int64"), -1), classes), dtype)


def cross_entropy(input: Variable, target: TensorLike, reduction: str = "mean") -> Variable:
    """The cross entropy of logits `input` (N, C) and integer labels `target` (N,), reduced by `reduction`."""
    target = as_variable(target)
    if input.ndim != 2 or target.ndim != 1 or target.shape[0] != input.shape[0]:
        raise ValueError(f"cross_entropy: expects logits (N, C) and labels (N,), got {input.shape} "
                         f"and {target.shape}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: labels must be integers, got {target.dtype}")
    n_classes = input.shape[1]
    if target.is_concrete:
        labels = target.value()
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise IndexError(f"cross_entropy: labels must lie in [0, {n_classes}), "
                             f"got values from {labels.min()} to {labels.max()}")
    else:
        target = apply("check_range", target, lo=0, hi=n_classes, what="cross_entropy: labels")
    log_p = log_softmax(input, 1)
    picked = sum(mul(log_p, one_hot(target, n_classes, input.dtype)), 1)
    # As PyTorch shows it: NllLoss of LogSoftmax of the logits.
    return _mark(_reduce_loss(neg(picked), reduction), "NllLoss", [log_p])


@composite("BinaryCrossEntropyWithLogits")
def binary_cross_entropy_with_logits(input: Variable, target: Variable, reduction: str = "mean") -> Variable:
    """softplus(input) - input * target, reduced by `reduction`: the loss of logits against 0/1 targets."""
    if input.shape != target.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: input shape {input.shape} and target "
                         f"shape {target.shape} differ")
    # softplus(x) - x t, with softplus a primitive (max(x, 0) + log1p(exp(-|x|)), no overflow)
    # whose pullback is sigmoid: the gradient is sigmoid(x) - t everywhere, 1/2 - t at x = 0
    # (where a relu-and-abs form has kinks whose derivatives do not add up), as PyTorch's.
    loss = sub(apply("softplus", input), mul(input, target))
    return _reduce_loss(loss, reduction)


# The losses' Variable arguments, converted or refused as functional.TENSOR_ARGUMENTS's are.
LOSS_ARGUMENTS = ("mse_loss", "cross_entropy", "binary_cross_entropy_with_logits")
for _fn in LOSS_ARGUMENTS:
    globals()[_fn] = takes_tensors(globals()[_fn], ("input", "target"))
