"""The optimizer base class: parameter groups, per-parameter state, zero_grad and state_dict
in PyTorch's format (parameters numbered in group order, state keyed by those numbers).

An optimizer's update is written once, in `_update`, with symgrad operations on the
parameter, its gradient and its state: `step()` runs it eagerly on values and writes the
results into the parameters' and the state's own storage; `sg.compile_step` runs the same
function on symbolic Variables and compiles what it returns into the training step. Numbers
that depend on Python-side values (the learning rate, Adam's bias corrections) are given to
`_update` as scalars computed by `_scalars`, in double precision as PyTorch computes them,
then rounded to the parameter's dtype; in a compiled step they are inputs of the graph."""
from __future__ import annotations

import copy
from collections import defaultdict

import numpy as np

from symgrad.variable import Variable


class _Required:
    """The default of a hyper-parameter that must be given (PyTorch's `required`)."""

    def __repr__(self):
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base class of the optimizers: `Optimizer(params, defaults)`, with `params` an iterable
    of Variables or of dicts (parameter groups) holding a "params" entry."""

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict = defaultdict(dict)
        self.param_groups: list[dict] = []
        if isinstance(params, Variable):
            raise TypeError("params argument given to the optimizer should be an iterable of Variables "
                            "or dicts, but got a Variable")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for k, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {k}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines) + "\n)"

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyper-parameters; the ones it leaves out
        take the optimizer's defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        params = [params] if isinstance(params, Variable) else list(params)
        for k, p in enumerate(params):
            if not isinstance(p, Variable):
                raise TypeError(f"optimizer can only optimize Variables, but params[{k}] is a "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"can't optimize a non-leaf Variable ({p._describe()})")
            if p._value is None:
                raise ValueError(f"can't optimize {p._describe()}: it is symbolic (it has no value)")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer parameter group contains a parameter twice")
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization "
                                 f"parameter {name}")
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters: to None (the default), or to zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                reset_grad(p, set_to_none)

    # --- the update ---------------------------------------------------------------------------

    def _buffer_keys(self, group: dict) -> tuple:
        """The state entries the size of the parameter that `_update` reads and writes."""
        return ()

    def _prepare(self, group: dict, p: Variable, state: dict) -> None:
        """Create the state of `p` on its first step (PyTorch's lazy initialisation)."""

    def _scalars(self, group: dict, state: dict, dtype) -> dict:
        """The numbers of this step for one parameter, rounded to its dtype (numpy scalars)."""
        raise NotImplementedError

    def _structure(self, group: dict) -> tuple:
        """What decides which operations `_update` records (not the numbers it uses)."""
        raise NotImplementedError

    def _update(self, group: dict, p, g, state: dict, s: dict):
        """(new value of p, {state key: new value}) from p, its gradient g, its state and the
        step's scalars `s`, with symgrad operations."""
        raise NotImplementedError

    counts_steps = False        # True: the state keeps a step count ("step"), as Adam's

    def _advance(self, state: dict) -> None:
        """Count the step in the state (Adam's "step"), before the scalars are computed."""
        if self.counts_steps:
            count_step(state)

    def step(self, closure=None):
        """One update of every parameter that has a gradient. `closure`, when given,
        re-evaluates the model and returns the loss (it runs with gradients enabled)."""
        from symgrad.autograd.grad_mode import enable_grad, no_grad
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    self._prepare(group, p, state)
                    keys = self._buffer_keys(group)
                    self._advance(state)
                    grad = p.grad if p.grad.dtype == p.dtype else p.grad.to(p.dtype)
                    scalars = self._scalars(group, state, p.dtype)
                    buffers = {k: state[k].detach() for k in keys if state.get(k) is not None}
                    new_p, new_state = self._update(group, p.detach(), grad.detach(), buffers, scalars)
                    _write(p, new_p)
                    for key, value in new_state.items():
                        if state.get(key) is not None:
                            _write(state[key], value)
                        else:
                            state[key] = Variable(np.array(value.value(), dtype=p.dtype, copy=True))
                    if not state:               # (an optimizer without state keeps none, as torch)
                        del self.state[p]
        return loss

    # --- state_dict ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """{"state": {index: {key: value}}, "param_groups": [{..., "params": [indices]}]}, with
        parameters numbered in the order of the groups, as PyTorch numbers them. The values are
        the optimizer's own per-parameter dicts and Variables (not copies), as in PyTorch: what
        changes in the optimizer's state afterwards shows in it too."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index and s}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a `state_dict()` (ours or PyTorch's layout, values as Variables, numpy arrays
        or torch tensors): the hyper-parameters of each group and a copy of every state value,
        cast to its parameter's dtype."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(groups)} parameter groups, this optimizer "
                             f"has {len(self.param_groups)}")
        for k, (mine, theirs) in enumerate(zip(self.param_groups, groups)):
            if len(mine["params"]) != len(theirs["params"]):
                raise ValueError(f"loaded state dict contains a parameter group (group {k}) that doesn't "
                                 f"match the size of optimizer's group: {len(theirs['params'])} parameters "
                                 f"given, {len(mine['params'])} here")
        by_index = {i: p for mine, theirs in zip(self.param_groups, groups)
                    for i, p in zip(theirs["params"], mine["params"])}
        new_state: dict = defaultdict(dict)
        for i, entries in state_dict["state"].items():
            p = by_index.get(int(i))
            if p is None:
                continue
            for key, value in entries.items():
                new_state[p][key] = _state_value(p, key, value)
        for mine, theirs in zip(self.param_groups, groups):
            params = mine["params"]
            mine.clear()
            mine.update(copy.deepcopy({k: v for k, v in theirs.items() if k != "params"}))
            mine["params"] = params
        self.state = new_state


def _array(value) -> np.ndarray:
    if isinstance(value, Variable):
        return value.value()
    if hasattr(value, "detach") and hasattr(value, "numpy"):      # a torch tensor
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _state_value(p: Variable, key: str, value):
    """A copy of a loaded state value: "step" stays a float32 scalar as PyTorch keeps it; the
    buffers take their parameter's dtype. Anything else (not an array) is kept as it is."""
    if value is None or isinstance(value, (str, bool)):
        return value
    arr = _array(value)
    if key == "step":
        return Variable(np.array(arr, dtype=np.float32).reshape(()))
    arr = np.array(arr, dtype=p.dtype, copy=True)
    if arr.shape != p.shape:
        raise ValueError(f"loaded state '{key}' has shape {arr.shape}, its parameter {p._describe()} "
                         f"has shape {p.shape}")
    return Variable(arr)


def _write(target: Variable, value: Variable) -> None:
    """Write a new value into a Variable's own storage (parameters are updated in place)."""
    arr = target._writable()
    if not arr.flags.c_contiguous:
        arr = target._value = np.ascontiguousarray(arr)
    with np.errstate(all="ignore"):
        arr[...] = value.value()
    target._vbox[0] += 1


# --- pieces the optimizers with a step count share (Adam, AdamW, RMSprop, Adagrad) -------------

def start_state(state: dict, p: Variable, keys) -> None:
    """A first step's state: the step count (a float32 0-d tensor, as torch keeps it) and zeros
    of p's shape for each of `keys`."""
    state["step"] = Variable(np.zeros((), np.float32))
    for key in keys:
        state[key] = Variable(np.zeros(p.shape, p.dtype))


def count_step(state: dict) -> None:
    """step_t += 1 in float32: the exact sum (a double holds it) rounded once to float32, as
    float32 addition rounds it; fill() is a tenth of the cost of numpy's += on a 0-d array."""
    step = state["step"]
    count = step._writable()
    count.fill(count.item() + 1.0)
    step._vbox[0] += 1


def lerp(start, end, weight, rest, small: bool):
    """start.lerp_(end, weight) in torch's two forms: start + weight * (end - start) for a
    weight under a half, else end - (end - start) * (1 - weight) (`rest`, rounded in the dtype)."""
    return start + weight * (end - start) if small else end - (end - start) * rest


def reset_grad(p: Variable, set_to_none: bool) -> None:
    """p's gradient forgotten (None), or zeroed in place when it holds a value (the same
    object keeps it, as torch's zero_grad(set_to_none=False)). Module.zero_grad and
    Optimizer.zero_grad both use it."""
    if p.grad is None:
        return
    if set_to_none:
        p.grad = None
    elif p.grad.op is None and p.grad._value is not None:
        _write(p.grad, Variable(np.zeros(p.shape, p.grad.dtype)))
    else:
        p.grad = Variable(np.zeros(p.shape, p.grad.dtype))
