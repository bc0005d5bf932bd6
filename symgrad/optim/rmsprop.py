"""RMSprop and Adagrad, in the order of operations of torch.optim's single-tensor updates:
RMSprop's square average by mul_ and addcmul_ (its centred form subtracts the square of a
lerp'd gradient average), the root plus eps, then addcdiv_ (or a momentum buffer by mul_ and
addcdiv_); Adagrad's sum by addcmul_, the learning rate decayed in double precision on the
Python side, then addcdiv_."""
from __future__ import annotations

import numpy as np

from symgrad.optim.optimizer import Optimizer, lerp, start_state
from symgrad.variable import Variable


def _check(**values) -> None:
    for name, value in values.items():
        if not 0.0 <= value:
            raise ValueError(f"Invalid {name} value: {value}" if name != "learning rate"
                             else f"Invalid learning rate: {value}")


class RMSprop(Optimizer):
    """`RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
    *, maximize=False)`, as torch.optim.RMSprop."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        _check(**{"learning rate": lr, "epsilon": eps, "momentum": momentum, "weight_decay": weight_decay,
                  "alpha": alpha})
        defaults = {"lr": lr, "momentum": momentum, "alpha": alpha, "eps": eps, "centered": centered,
                    "weight_decay": weight_decay, "capturable": capturable, "foreach": foreach,
                    "maximize": maximize, "differentiable": differentiable}
        super().__init__(params, defaults)

    def _buffer_keys(self, group: dict) -> tuple:
        return ("square_avg",) + (("momentum_buffer",) if group["momentum"] > 0 else ()) + \
            (("grad_avg",) if group["centered"] else ())

    def _prepare(self, group: dict, p: Variable, state: dict) -> None:
        if not state:
            start_state(state, p, self._buffer_keys(group))

    counts_steps = True

    def _structure(self, group: dict) -> tuple:
        return (group["weight_decay"] != 0, group["momentum"] > 0, bool(group["centered"]),
                bool(group["maximize"]), abs(1 - group["alpha"]) < 0.5)

    def _scalars(self, group: dict, state: dict, dtype) -> dict:
        t = np.dtype(dtype).type
        weight = t(1 - group["alpha"])
        return {"alpha": t(group["alpha"]), "one_minus_alpha": weight, "lerp_rest": t(1) - weight,
                "eps": t(group["eps"]), "weight_decay": t(group["weight_decay"]),
                "momentum": t(group["momentum"]), "neg_lr": t(-group["lr"])}

    def _update(self, group: dict, p, g, state: dict, s: dict):
        from symgrad.functional import sqrt
        weight_decay, momentum, centered, maximize, small_weight = self._structure(group)
        if maximize:
            g = -g
        if weight_decay:
            g = g + s["weight_decay"] * p                       # grad.add(param, alpha=weight_decay)
        # square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        square_avg = state["square_avg"] * s["alpha"] + s["one_minus_alpha"] * g * g
        new_state = {"square_avg": square_avg}
        if centered:
            # grad_avg.lerp_(grad, 1 - alpha)
            grad_avg = lerp(state["grad_avg"], g, s["one_minus_alpha"], s["lerp_rest"], small_weight)
            new_state["grad_avg"] = grad_avg
            avg = sqrt(square_avg + -1.0 * grad_avg * grad_avg)     # addcmul(.., value=-1).sqrt_()
        else:
            avg = sqrt(square_avg)
        avg = avg + s["eps"]
        if momentum:                      # buf.mul_(momentum).addcdiv_(grad, avg); param.add_(buf, alpha=-lr)
            buf = state["momentum_buffer"] * s["momentum"] + g / avg
            new_state["momentum_buffer"] = buf
            return p + s["neg_lr"] * buf, new_state
        return p + s["neg_lr"] * g / avg, new_state             # param.addcdiv_(grad, avg, value=-lr)


class Adagrad(Optimizer):
    """`Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
    *, maximize=False)`, as torch.optim.Adagrad."""

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        _check(**{"learning rate": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                  "initial_accumulator_value": initial_accumulator_value, "epsilon": eps})
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value, "foreach": foreach,
                    "maximize": maximize, "differentiable": differentiable, "fused": fused}
        super().__init__(params, defaults)

    def _buffer_keys(self, group: dict) -> tuple:
        return ("sum",)

    def _prepare(self, group: dict, p: Variable, state: dict) -> None:
        if not state:
            start_state(state, p, ())
            state["sum"] = Variable(np.full(p.shape, group["initial_accumulator_value"], p.dtype))

    counts_steps = True

    def _structure(self, group: dict) -> tuple:
        return (group["weight_decay"] != 0, bool(group["maximize"]))

    def _scalars(self, group: dict, state: dict, dtype) -> dict:
        t = np.dtype(dtype).type
        step = float(state["step"].item())
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        return {"neg_clr": t(-clr), "eps": t(group["eps"]), "weight_decay": t(group["weight_decay"])}

    def _update(self, group: dict, p, g, state: dict, s: dict):
        from symgrad.functional import sqrt
        weight_decay, maximize = self._structure(group)
        if maximize:
            g = -g
        if weight_decay:
            g = g + s["weight_decay"] * p
        total = state["sum"] + 1.0 * g * g                      # state_sum.addcmul_(grad, grad, value=1)
        std = sqrt(total) + s["eps"]
        return p + s["neg_clr"] * g / std, {"sum": total}       # param.addcdiv_(grad, std, value=-clr)
