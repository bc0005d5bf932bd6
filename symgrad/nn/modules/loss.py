"""Losses as modules: `MSELoss`, `L1Loss`, `CrossEntropyLoss`, `NLLLoss`, `BCEWithLogitsLoss`."""
from __future__ import annotations

from symgrad.nn import functional as NF
from symgrad.nn.modules.module import Module


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            raise NotImplementedError("size_average and reduce are deprecated in PyTorch and not supported "
                                      "by symgrad; use reduction=")
        self.reduction = NF._reduction(type(self).__name__, reduction)


class MSELoss(_Loss):
    """The mean squared error of `(input, target)`, reduced by `reduction`. PyTorch: `torch.nn.MSELoss`."""

    def forward(self, input, target):
        return NF.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """The mean absolute error of `(input, target)`, reduced by `reduction`. PyTorch: `torch.nn.L1Loss`."""

    def forward(self, input, target):
        return NF.l1_loss(input, target, reduction=self.reduction)


class _WeightedLoss(_Loss):
    """A loss with per-class weights, held as a buffer (as PyTorch's _WeightedLoss)."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)      # a buffer, as PyTorch's (follows .to() and state_dict)


class NLLLoss(_WeightedLoss):
    """The negative log likelihood of log-probabilities and integer labels. PyTorch: `torch.nn.NLLLoss`."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return NF.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                           reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    """The cross entropy of logits and labels (or class probabilities).

    PyTorch: `torch.nn.CrossEntropyLoss`."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return NF.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                                reduction=self.reduction, label_smoothing=self.label_smoothing)


class BCEWithLogitsLoss(_Loss):
    """Binary cross entropy of logits against 0/1 targets, computed stably.

    `weight` and `pos_weight` are kept as buffers. PyTorch: `torch.nn.BCEWithLogitsLoss`."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean",
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        # PyTorch holds them as buffers (so they follow .to() and state_dict).
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return NF.binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                   pos_weight=self.pos_weight)
