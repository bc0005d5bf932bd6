"""Stochastic gradient descent, with PyTorch's momentum, dampening, Nesterov momentum, weight
decay and maximize, in the order of operations of torch.optim.SGD's single-tensor update."""
from __future__ import annotations

import numpy as np

from symgrad.functional import where
from symgrad.optim.optimizer import Optimizer


class SGD(Optimizer):
    """`SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
    maximize=False)`, as torch.optim.SGD."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov, "maximize": maximize, "foreach": foreach,
                    "differentiable": differentiable, "fused": fused}
        super().__init__(params, defaults)

    def _buffer_keys(self, group: dict) -> tuple:
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _structure(self, group: dict) -> tuple:
        return (group["momentum"] != 0, group["weight_decay"] != 0, bool(group["nesterov"]),
                bool(group["maximize"]))

    def _scalars(self, group: dict, state: dict, dtype) -> dict:
        t = np.dtype(dtype).type        # Python numbers rounded to the parameter's dtype, as torch does
        return {"neg_lr": t(-group["lr"]), "weight_decay": t(group["weight_decay"]),
                "momentum": t(group["momentum"]), "one_minus_dampening": t(1 - group["dampening"])}

    def _update(self, group: dict, p, g, state: dict, s: dict):
        momentum, weight_decay, nesterov, maximize = self._structure(group)
        if maximize:
            g = -g
        if weight_decay:
            g = g + s["weight_decay"] * p                   # grad.add(param, alpha=weight_decay)
        new_state = {}
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:                                 # the first step: the gradient itself
                buf = g
            else:
                running = buf * s["momentum"] + s["one_minus_dampening"] * g
                # in a compiled step the buffer exists from the start; "fresh" marks its first step
                buf = running if "fresh" not in s else where(s["fresh"], g, running)
            new_state["momentum_buffer"] = buf
            g = g + s["momentum"] * buf if nesterov else buf
        return p + s["neg_lr"] * g, new_state

