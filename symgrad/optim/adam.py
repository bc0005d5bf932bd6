"""Adam and AdamW, in the order of operations of torch.optim.Adam's single-tensor update (the
non-capturable path): the moments by lerp and mul/addcmul, the bias corrections in double
precision on the Python side, then param.addcdiv_(exp_avg, denom, value=-step_size)."""
from __future__ import annotations

import numpy as np

from symgrad.optim.optimizer import Optimizer, lerp, start_state
from symgrad.variable import Variable


class Adam(Optimizer):
    """`Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
    maximize=False, decoupled_weight_decay=False)`, as torch.optim.Adam."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad, "maximize": maximize, "foreach": foreach, "capturable": capturable,
                    "differentiable": differentiable, "fused": fused,
                    "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)

    def _buffer_keys(self, group: dict) -> tuple:
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

    def _prepare(self, group: dict, p: Variable, state: dict) -> None:
        if not state:
            start_state(state, p, self._buffer_keys(group))

    counts_steps = True

    def _structure(self, group: dict) -> tuple:
        beta1 = group["betas"][0]
        return (group["weight_decay"] != 0, bool(group["decoupled_weight_decay"]), bool(group["amsgrad"]),
                bool(group["maximize"]), abs(1 - beta1) < 0.5)

    def _scalars(self, group: dict, state: dict, dtype) -> dict:
        t = np.dtype(dtype).type
        lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
        step = float(state["step"].value().item())
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        weight = t(1 - beta1)                       # lerp's weight, in the parameter's dtype
        return {"decay": t(1 - lr * wd), "weight_decay": t(wd), "lerp_weight": weight,
                "lerp_rest": t(1) - weight,          # lerp computes (1 - weight) in its dtype
                "beta2": t(beta2), "one_minus_beta2": t(1 - beta2),
                "bias_correction2_sqrt": t(bias_correction2 ** 0.5), "eps": t(group["eps"]),
                "neg_step_size": t(-step_size)}

    def _update(self, group: dict, p, g, state: dict, s: dict):
        from symgrad.functional import maximum, sqrt
        weight_decay, decoupled, amsgrad, maximize, small_weight = self._structure(group)
        if maximize:
            g = -g
        if weight_decay:
            if decoupled:
                p = p * s["decay"]                          # param.mul_(1 - lr * weight_decay)
            else:
                g = g + s["weight_decay"] * p               # grad.add(param, alpha=weight_decay)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg = lerp(exp_avg, g, s["lerp_weight"], s["lerp_rest"], small_weight)  # lerp_(grad, 1 - beta1)
        # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        exp_avg_sq = exp_avg_sq * s["beta2"] + s["one_minus_beta2"] * g * g
        new_state = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        second = exp_avg_sq
        if amsgrad:
            second = new_state["max_exp_avg_sq"] = maximum(state["max_exp_avg_sq"], exp_avg_sq)
        denom = sqrt(second) / s["bias_correction2_sqrt"] + s["eps"]
        # param.addcdiv_(exp_avg, denom, value=-step_size)
        return p + s["neg_step_size"] * exp_avg / denom, new_state


class AdamW(Adam):
    """`AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
    maximize=False)`: Adam with decoupled weight decay, as torch.optim.AdamW."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
