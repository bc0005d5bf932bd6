"""PyTorch's `torch.nn.functional` names for symgrad's layers, activations and losses, each a
composite of the registry's primitives (so each is differentiable, compiled and interpreted)."""
from __future__ import annotations

import math
import warnings

import numpy as np

from symgrad import dtypes
from symgrad import functional as F
from symgrad import losses as _losses
from symgrad.functional import sigmoid, softplus, tanh
from symgrad.losses import binary_cross_entropy_with_logits as _bce_logits
from symgrad.losses import one_hot
from symgrad.hints import DTypeLike, TensorLike
from symgrad.nn import class_losses as _class_losses
from symgrad.variable import Variable

_REDUCTIONS = ("mean", "sum", "none")


def _reduction(fn: str, reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: {reduction!r} is not a valid value for reduction (use 'mean', 'sum' "
                         f"or 'none')")
    return reduction


def _tensor(fn: str, name: str, x):
    if isinstance(x, Variable):
        return x
    if isinstance(x, np.ndarray):
        return Variable(x)
    raise TypeError(f"{fn}(): argument '{name}' must be a Variable, not {type(x).__name__}")


# --- activations --------------------------------------------------------------------------------

def relu(input: Variable, inplace: bool = False) -> Variable:
    """Returns max(input, 0), elementwise; `inplace` writes the result into `input`.

    PyTorch: `torch.nn.functional.relu`."""
    out = F.relu(input)
    return input.copy_(out) if inplace else out


def leaky_relu(input: Variable, negative_slope: float = 0.01, inplace: bool = False) -> Variable:
    """Returns input where it is positive and negative_slope * input elsewhere, elementwise.

    `inplace` writes the result into `input`. PyTorch: `torch.nn.functional.leaky_relu`."""
    out = F.where(F.gt(input, 0), input, F.mul(input, negative_slope))
    return input.copy_(out) if inplace else out


def gelu(input: TensorLike, approximate: str = "none") -> Variable:
    """Returns x * Phi(x) of `input`, elementwise, with Phi the normal distribution's cdf.

    Phi(x) is 0.5 (1 + erf(x / sqrt 2)), or with `approximate='tanh'`
    0.5 (1 + tanh(sqrt(2 / pi) (x + 0.044715 x**3))), as PyTorch's `torch.nn.functional.gelu`."""
    input = _tensor("gelu", "input", input)
    if approximate == "none":
        return F.mul(F.mul(input, 0.5), F.add(1.0, F.erf(F.mul(input, math.sqrt(0.5)))))
    if approximate == "tanh":
        cube = F.mul(input, F.mul(input, input))
        inner = F.mul(math.sqrt(2.0 / math.pi), F.add(input, F.mul(0.044715, cube)))
        return F.mul(F.mul(input, 0.5), F.add(1.0, F.tanh(inner)))
    raise ValueError(f"gelu: approximate argument must be either none or tanh, got {approximate!r}")


def silu(input: Variable, inplace: bool = False) -> Variable:
    """Returns input * sigmoid(input), elementwise; `inplace` writes the result into `input`.

    PyTorch: `torch.nn.functional.silu`."""
    out = F.mul(input, F.sigmoid(input))
    return input.copy_(out) if inplace else out


def _softmax_dim(name: str, ndim: int, stacklevel: int) -> int:
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to "
                  f"include dim=X as an argument.", stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Variable, dim: int | None = None, _stacklevel: int = 3,
            dtype: DTypeLike = None) -> Variable:
    """Returns exp(input) / sum(exp(input)) along `dim`, computed stably; `dtype` casts first.

    Without `dim`, PyTorch's deprecated implicit choice, with its warning `_stacklevel` frames
    up (the caller's line). PyTorch: `torch.nn.functional.softmax`."""
    if dim is None:
        dim = _softmax_dim("softmax", input.ndim, _stacklevel)
    return F.softmax(input, dim, dtype=dtype)


def log_softmax(input: Variable, dim: int | None = None, _stacklevel: int = 3,
                dtype: DTypeLike = None) -> Variable:
    """Returns input - logsumexp(input) along `dim`, computed stably; `dtype` casts first.

    Without `dim`, PyTorch's deprecated implicit choice, with its warning `_stacklevel` frames
    up (the caller's line). PyTorch: `torch.nn.functional.log_softmax`."""
    if dim is None:
        dim = _softmax_dim("log_softmax", input.ndim, _stacklevel)
    return F.log_softmax(input, dim, dtype=dtype)


# --- layers ----------------------------------------------------------------------------------------

def linear(input: TensorLike, weight: Variable, bias: Variable | None = None) -> Variable:
    """Returns input @ weight.T + bias (no bias when `bias` is None).

    `weight` is (out_features, in_features). PyTorch: `torch.nn.functional.linear`."""
    out = F.matmul(input, F.t(weight))
    return out if bias is None else F.add(out, bias)


def layer_norm(input: TensorLike, normalized_shape: int | tuple[int, ...], weight: Variable | None = None,
               bias: Variable | None = None, eps: float = 1e-5) -> Variable:
    """Returns `input` normalised over its trailing `normalized_shape` dimensions, then scaled and shifted.

    The variance is the biased one, `eps` is added to it; `weight` scales and `bias` shifts
    (each optional). PyTorch: `torch.nn.functional.layer_norm`."""
    input = _tensor("layer_norm", "input", input)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or input.ndim < k or tuple(input.shape[-k:]) != shape:
        raise ValueError(f"layer_norm: given normalized_shape={list(shape)}, expected input with shape "
                         f"[*, {', '.join(map(str, shape))}], but got input of size {list(input.shape)}")
    for what, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != shape:
            raise ValueError(f"layer_norm: {what} of shape {tuple(p.shape)} does not match "
                             f"normalized_shape {shape}")
    dims = tuple(range(input.ndim - k, input.ndim))
    centred = F.sub(input, F.mean(input, dims, keepdim=True))
    var = F.mean(F.mul(centred, centred), dims, keepdim=True)
    out = F.mul(centred, F.div(1.0, F.sqrt(F.add(var, eps))))
    if weight is not None:
        out = F.mul(out, weight)
    if bias is not None:
        out = F.add(out, bias)
    return out


def dropout(input: Variable, p: float = 0.5, training: bool = True, inplace: bool = False) -> Variable:
    """Returns `input` with each element zeroed with probability `p` and the rest scaled by 1 / (1 - p).

    Only when `training`; the identity otherwise. The mask comes from symgrad's generator
    (sg.manual_seed); `inplace` writes the result into `input`. PyTorch: `torch.nn.functional.dropout`."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    input = _tensor("dropout", "input", input)
    if not training or p == 0.0:
        return input
    if not input.is_concrete:
        raise NotImplementedError(
            f"dropout in training mode on {input._describe()}, which is symbolic: a compiled graph would "
            f"hold one random mask for every call. Call model.eval() (or training=False) before compiling")
    if not dtypes.is_float(input.dtype):
        raise TypeError(f"dropout: input must be floating point, got {input.dtype}")
    from symgrad.creation import rand
    if p == 1.0:
        scale = np.zeros(input.shape, input.dtype)
    else:
        keep = rand(*input.shape, dtype="float64").numpy() < 1.0 - p      # PyTorch's bernoulli_(1 - p)
        scale = (keep / (1.0 - p)).astype(input.dtype)
    out = F.mul(input, Variable(scale))
    return input.copy_(out) if inplace else out


def embedding(input: TensorLike, weight: Variable, padding_idx: int | None = None) -> Variable:
    """Returns the rows of `weight` picked by the integer `input` (any shape).

    The row `padding_idx` gets no gradient, as in PyTorch's `torch.nn.functional.embedding`."""
    input = _tensor("embedding", "input", input)
    if input.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers (int32 or int64), got {input.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape "
                         f"{tuple(weight.shape)}")
    n = weight.shape[0]
    if input.is_concrete:
        idx = input.value()
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"embedding: indices must lie in [0, {n}), got values from {idx.min()} to "
                             f"{idx.max()}")
    out = weight[input]
    if padding_idx is not None:
        if padding_idx < 0:
            padding_idx += n
        keep = F.ne(F.unsqueeze(input, -1), padding_idx)
        out = F.where(keep, out, weight.detach()[input])
    return out


# --- losses ------------------------------------------------------------------------------------------

def mse_loss(input: Variable, target: Variable, reduction: str = "mean") -> Variable:
    """Returns the mean (`reduction="sum"`: the sum; `"none"`: each) of (input - target) ** 2.

    PyTorch: `torch.nn.functional.mse_loss`."""
    return _losses.mse_loss(input, target, reduction=_reduction("mse_loss", reduction))


def l1_loss(input: TensorLike, target: TensorLike, reduction: str = "mean") -> Variable:
    """Returns the mean (`reduction="sum"`: the sum; `"none"`: each) of |input - target|.

    PyTorch: `torch.nn.functional.l1_loss`."""
    input, target = _tensor("l1_loss", "input", input), _tensor("l1_loss", "target", target)
    if input.shape != target.shape:
        raise ValueError(f"l1_loss: input shape {input.shape} and target shape {target.shape} differ")
    return _losses._reduce_loss(F.abs(F.sub(input, target)), _reduction("l1_loss", reduction))


def _classes_last(fn: str, input, target):
    """(N, C, d1, ...) inputs with (N, d1, ...) targets as (N*d1*..., C) and (N*d1*...,), and an
    unbatched (C,) input with a 0-d target as (1, C) and (1,); and the shape 'none' restores."""
    if input.ndim == 1:
        if target.ndim != 0:
            raise ValueError(f"{fn}: an input of shape {input.shape} needs a 0-d target, got {target.shape}")
        return F.unsqueeze(input, 0), F.reshape(target, (1,)), ()
    if input.ndim < 1 or target.shape != input.shape[:1] + input.shape[2:]:
        raise ValueError(f"{fn}: expects input (N, C, d1, ...) and target (N, d1, ...), got {input.shape} "
                         f"and {target.shape}")
    if input.ndim == 2:
        return input, target, target.shape
    perm = (0,) + tuple(range(2, input.ndim)) + (1,)
    flat = F.reshape(F.permute(input, perm), (-1, input.shape[1]))
    return flat, F.reshape(target, (-1,)), target.shape


def _check_labels(fn: str, target, n_classes: int):
    if target.dtype.kind not in "iu":
        raise TypeError(f"{fn}: class labels must be integers, got {target.dtype}")
    if target.is_concrete:
        labels = target.value()
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise IndexError(f"{fn}: labels must lie in [0, {n_classes}), got values from {labels.min()} "
                             f"to {labels.max()}")
        return target
    return F.apply("check_range", target, lo=0, hi=n_classes, what=f"{fn}: labels")


def nll_loss(input: TensorLike, target: TensorLike, weight: TensorLike | None = None,
             ignore_index: int = -100, reduction: str = "mean") -> Variable:
    """Returns -input[n, target[n]] for log-probabilities `input`, averaged or summed by `reduction`.

    `weight` weighs each class, and rows whose label is `ignore_index` count for nothing, as
    PyTorch's. PyTorch: `torch.nn.functional.nll_loss`."""
    input, target = _tensor("nll_loss", "input", input), _tensor("nll_loss", "target", target)
    reduction = _reduction("nll_loss", reduction)
    flat, labels, shape = _classes_last("nll_loss", input, target)
    if _class_losses.uses_general_path(labels, weight, ignore_index, 0.0):
        return _class_losses.class_nll("nll_loss", flat, labels, shape, reduction, weight, ignore_index)
    labels = _check_labels("nll_loss", labels, flat.shape[1])
    picked = F.sum(F.mul(flat, one_hot(labels, flat.shape[1], flat.dtype)), 1)
    loss = F.neg(picked)
    if reduction == "none":
        return F.reshape(loss, shape)
    return _losses._reduce_loss(loss, reduction)


def cross_entropy(input: TensorLike, target: TensorLike, weight: TensorLike | None = None,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Variable:
    """Returns the cross entropy of logits `input`: log_softmax over dimension 1, then nll_loss.

    `target` holds integer labels, or is a float Variable of the input's shape holding class
    probabilities. `weight`, `ignore_index` and `label_smoothing` as PyTorch's
    (symgrad/nn/class_losses.py). PyTorch: `torch.nn.functional.cross_entropy`."""
    input, target = _tensor("cross_entropy", "input", input), _tensor("cross_entropy", "target", target)
    reduction = _reduction("cross_entropy", reduction)
    if dtypes.is_float(target.dtype):
        if target.shape != input.shape:
            raise TypeError(f"cross_entropy: labels must be integers, got {target.dtype} of shape "
                            f"{target.shape} (class probabilities would have the input's shape "
                            f"{input.shape})")
        if weight is not None or label_smoothing:
            return _class_losses.probability_cross_entropy("cross_entropy", input, target, reduction,
                                                           weight, label_smoothing)
        dim = 0 if input.ndim == 1 else 1
        loss = F.neg(F.sum(F.mul(F.log_softmax(input, dim), target), dim))
        return _losses._reduce_loss(loss, reduction)
    flat, labels, shape = _classes_last("cross_entropy", input, target)
    if _class_losses.uses_general_path(labels, weight, ignore_index, label_smoothing):
        return _class_losses.class_nll("cross_entropy", F.log_softmax(flat, 1), labels, shape, reduction,
                                       weight, ignore_index, label_smoothing)
    loss = _losses.cross_entropy(flat, labels, reduction=reduction)
    return F.reshape(loss, shape) if reduction == "none" else loss


def binary_cross_entropy_with_logits(input: TensorLike, target: TensorLike,
                                     weight: TensorLike | None = None, reduction: str = "mean",
                                     pos_weight: TensorLike | None = None) -> Variable:
    """Returns softplus(x) - x t of logits x = `input` and targets t = `target`, reduced by `reduction`.

    `pos_weight` weighs the positive term and `weight` each element.
    PyTorch: `torch.nn.functional.binary_cross_entropy_with_logits`."""
    reduction = _reduction("binary_cross_entropy_with_logits", reduction)
    if weight is None and pos_weight is None:
        return _bce_logits(input, target, reduction=reduction)
    input = _tensor("binary_cross_entropy_with_logits", "input", input)
    target = _tensor("binary_cross_entropy_with_logits", "target", target)
    if input.shape != target.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: input shape {input.shape} and target shape "
                         f"{target.shape} differ")
    if pos_weight is None:
        loss = F.sub(F.softplus(input), F.mul(input, target))
    else:
        # (1 - t) x + (1 + (pw - 1) t) softplus(-x), softplus(-x) being softplus(x) - x.
        log_weight = F.add(F.mul(F.sub(pos_weight, 1.0), target), 1.0)
        loss = F.add(F.mul(F.sub(1.0, target), input),
                     F.mul(log_weight, F.sub(F.softplus(input), input)))
    if weight is not None:
        loss = F.mul(loss, weight)
    return _losses._reduce_loss(loss, reduction)


__all__ = ["binary_cross_entropy_with_logits", "cross_entropy", "dropout", "embedding", "gelu",
           "layer_norm", "leaky_relu", "linear", "l1_loss", "log_softmax", "mse_loss", "nll_loss",
           "one_hot", "relu", "sigmoid", "silu", "softmax", "softplus", "tanh"]
