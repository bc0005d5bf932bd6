"""`sg.compile_step(model, loss_fn, optimizer)`: a whole training step (forward, the gradients
by `sg.grad`, and the optimizer's update of the parameters and of its state) compiled into
one C function, through `sg.compile(..., updates=...)`.

The parameters themselves are the graph's inputs: while the step is traced they are made
symbolic for a moment (their values are put back at once), so `model(*inputs)` records the
graph from the very Variables the model holds, whatever kind of module it is. At each call
the C reads and writes the parameters' and the optimizer state's own numpy arrays in place;
the numbers that change between steps (the learning rate a scheduler sets, Adam's bias
corrections, which depend on the step count kept in `optimizer.state`) are computed on the
Python side exactly as `optimizer.step()` computes them and passed in as one small vector
per dtype. A change of what the update records (momentum turned on, amsgrad, a new
parameter group) compiles the step again."""
from __future__ import annotations

from operator import attrgetter, is_
from typing import TYPE_CHECKING, Callable

import numpy as np

from symgrad.variable import Variable

if TYPE_CHECKING:
    from symgrad.nn.modules.module import Module
    from symgrad.optim.optimizer import Optimizer


def _tensors(model) -> list[tuple[str, Variable]]:
    """(name, Variable) pairs of the model's parameters (from `named_parameters()` when the
    model has it, else `parameters()`) and of its buffers (`named_buffers()`, if any)."""
    if hasattr(model, "named_parameters"):
        pairs = list(model.named_parameters())
    elif hasattr(model, "parameters"):
        pairs = [(f"param{k}", p) for k, p in enumerate(model.parameters())]
    else:
        raise TypeError(f"sg.compile_step: the model ({type(model).__name__}) has no parameters() method")
    if hasattr(model, "named_buffers"):
        pairs += [(name, b) for name, b in model.named_buffers() if b is not None]
    seen, out = set(), []
    for name, p in pairs:
        if not isinstance(p, Variable):
            raise TypeError(f"sg.compile_step: parameter '{name}' is a {type(p).__name__}, not a Variable")
        if id(p) not in seen and p._value is not None and p.op is None:
            seen.add(id(p))
            out.append((name, p))
    return out


def _c_name(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def _as_array(value) -> np.ndarray:
    if isinstance(value, Variable):
        return value.value()
    if isinstance(value, np.ndarray):
        return value
    return Variable(value).value()     # lists and numbers as sg.tensor makes them (float32)


def _own_array(v: Variable, dtype, vetted: list, k: int) -> np.ndarray:
    """The Variable's array, made writable, C-contiguous and of `dtype` if it was not (once).
    `vetted[k]` is the array found so at slot k the call before, not looked at again (the
    compiled call still checks what it writes into)."""
    arr = v._value
    if vetted[k] is arr:
        return arr
    if not (arr.flags.c_contiguous and arr.flags.writeable and arr.dtype == dtype):
        arr = v._value = np.array(arr, dtype=dtype, order="C", copy=True)
    vetted[k] = arr
    return arr


class CompiledStep:
    """A compiled training step: `loss = step(*inputs, target)`. `step.source` is its C."""

    def __init__(self, model, loss_fn, optimizer, backend: str = "c"):
        from symgrad.optim import Optimizer
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"sg.compile_step: optimizer must be a symgrad.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"sg.compile_step: loss_fn must be callable, got {type(loss_fn).__name__}")
        self.model, self.loss_fn, self.optimizer, self.backend = model, loss_fn, optimizer, backend
        self._key = self._quick = self._plan = None
        self._specs = None
        self.fn = None

    # --- building ---------------------------------------------------------------------------

    def _layout(self):
        """The model's parameters that the optimizer updates, each with its group, and the
        model's other parameters and buffers: inputs too (read at every call, never captured
        as constants, so a change of a frozen weight reaches the C)."""
        group_of = {id(p): g for g in self.optimizer.param_groups for p in g["params"]}
        tensors = _tensors(self.model)
        params = [(name, p, group_of[id(p)]) for name, p in tensors if id(p) in group_of and p.requires_grad]
        if not params:
            raise ValueError("sg.compile_step: none of the model's parameters is in the optimizer")
        trained = {id(p) for _, p, _ in params}
        fixed = [(name, v) for name, v in tensors if id(v) not in trained]
        key = tuple((id(p), id(g), self.optimizer._structure(g), p.shape, p.dtype) for _, p, g in params) + \
            tuple((id(v), v.shape, v.dtype) for _, v in fixed)
        return params, fixed, key

    def _build(self, params, fixed, key, arrays):
        from symgrad.autodiff import grad
        from symgrad.autograd.grad_mode import enable_grad
        from symgrad.compile import compile as sg_compile
        n = len(arrays)
        data = [Variable(shape=a.shape, dtype=a.dtype, name="target" if k == n - 1 else f"input{k}")
                for k, a in enumerate(arrays)]
        named = [(name, p) for name, p, _ in params] + fixed
        saved = [(p, p._value, p.name) for _, p in named]
        try:
            for (name, p), (_, _, old_name) in zip(named, saved):
                p._value = None                 # symbolic while traced: the parameter is an input
                p.name = old_name or _c_name(name)
            with enable_grad():
                loss = self.loss_fn(self.model(*data[:-1]), data[-1])
                if not isinstance(loss, Variable) or loss.numel() != 1:
                    got = loss._describe() if isinstance(loss, Variable) else type(loss).__name__
                    raise ValueError(f"sg.compile_step: loss_fn must return one number; got {got}")
                grads = grad(loss, [p for _, p, _ in params], allow_unused=True)
            # a parameter the loss does not reach has no gradient: the eager step skips it
            unused = [p for (_, p, _), g in zip(params, grads) if g is None]
            kept = [(q, g) for q, g in zip(params, grads) if g is not None]
            params, grads = [q for q, _ in kept], [g for _, g in kept]
            if not params:
                raise ValueError("sg.compile_step: the loss depends on none of the parameters the "
                                 "optimizer updates")
            updates, buffers, hyper, spans = self._update_graph(params, grads)
            fixed = unused + [v for _, v in fixed]
            inputs = data + [p for _, p, _ in params] + fixed + [b for _, _, b in buffers] + \
                list(hyper.values())
            self.fn = sg_compile(inputs, loss, wrt=[], backend=self.backend, updates=updates)
        finally:
            for p, value, name in saved:
                p._value, p.name = value, name
        self._params, self._fixed, self._key = params, fixed, key
        self._buffers = [(p, k) for p, k, _ in buffers]
        self._hyper = [np.zeros(h.shape, h.dtype) for h in hyper.values()]
        position = {dt: k for k, dt in enumerate(hyper)}
        self._rows = [(self._hyper[position[dt]], lo, hi) for dt, lo, hi in spans]
        self._specs = [(a.shape, a.dtype) for a in arrays]
        self._private: dict = {}                # buffers not yet in the optimizer's state
        self._vetted = [None] * (len(self._params) + len(self._buffers))    # (see _own_array)

    def _update_graph(self, params, grads):
        """The optimizer's update of each parameter and its state buffers, as graphs of the
        symbolic parameter, its gradient, symbolic buffers and the step's scalars, which are
        read from one vector per dtype ({dtype: Variable}); `spans` says where each
        parameter's scalars lie in its vector (the last one is "fresh": no state yet)."""
        from symgrad.autograd.grad_mode import no_grad
        opt = self.optimizer
        slots, sizes, spans, self._names = [], {}, [], {}
        for _, p, group in params:
            names = sorted(opt._scalars(group, _probe_state(opt, group, p), p.dtype))
            self._names[id(group)] = names
            names = names + ["fresh"]
            base = sizes.get(p.dtype, 0)
            slots.append({s: base + k for k, s in enumerate(names)})
            spans.append((p.dtype, base, base + len(names)))
            sizes[p.dtype] = base + len(names)
        hyper = {dt: Variable(shape=(n,), dtype=dt, name=f"scalars_{dt.name}") for dt, n in sizes.items()}
        updates, buffers = {}, []
        with no_grad():
            for (name, p, group), g, slot in zip(params, grads, slots):
                h = hyper[p.dtype]
                s = {k: h[i] for k, i in slot.items() if k != "fresh"}
                s["fresh"] = h[slot["fresh"]] > 0.5
                state = {}
                for k in opt._buffer_keys(group):
                    state[k] = Variable(shape=p.shape, dtype=p.dtype, name=f"{_c_name(p.name)}_{k}")
                    buffers.append((p, k, state[k]))
                new_p, new_state = opt._update(group, p, g, state, s)
                updates[p] = new_p
                for k, v in new_state.items():
                    updates[state[k]] = v
        return updates, buffers, hyper, spans

    # --- calling ----------------------------------------------------------------------------

    def __call__(self, *inputs) -> float:
        if len(inputs) < 1:
            raise TypeError("compile_step: call it as step(*inputs, target)")
        arrays = [a if type(a) is np.ndarray else _as_array(a) for a in inputs]
        self._rebuild_if_changed(arrays)
        if self._plan is not None:
            loss = self._plan(self, arrays)
            if loss is not None:
                return loss
        counters = self._count_and_fill_scalars()
        try:
            loss = self._call(*arrays, *self._state_arrays())
        except BaseException:
            for var, old in counters:           # the step did not happen
                var._writable()[...] = old
            for p in self._new_states:          # nor the state it started
                self.optimizer.state.pop(p, None)
            raise
        self._publish_state()
        self._plan = _Steady.of(self)
        return float(loss[0])

    def _rebuild_if_changed(self, arrays) -> None:
        """Compile at the first call, and again when what the update records has changed.
        Cheaply: the full layout (the model's parameters) is looked at again only when the
        optimizer's groups or the model's mode change."""
        opt = self.optimizer
        quick = tuple([(id(g), opt._structure(g), len(g["params"])) for g in opt.param_groups]) + \
            (getattr(self.model, "training", None),)
        if quick == self._quick:
            return
        self._plan = None
        params, fixed, key = self._layout()
        mode_changed = self._quick is not None and quick[-1] != self._quick[-1]
        if key != self._key or mode_changed:
            # later builds keep the first call's input specs: other shapes are an error, as in sg.compile
            self._build(params, fixed, key, arrays if self._specs is None else
                        [np.zeros(s, d) for s, d in self._specs])
            # the forward entry's own caller (sg.compile's checks and conversions, without the
            # CompiledFunction wrapper): the outputs' list, the loss first
            self._call = self.fn.forward_fn
            self._slots = [(p, group, self._names[id(group)], hyper, lo, hi, opt._buffer_keys(group))
                           for (_, p, group), (hyper, lo, hi) in zip(self._params, self._rows)]
        self._quick = quick

    def _count_and_fill_scalars(self) -> list:
        """Advance each parameter's step count and write this step's scalars into the vectors
        the C reads; returns the counters with their old values (to undo a failed call)."""
        opt = self.optimizer
        states = opt.state
        counters, rows = [], {}
        self._new_states = []
        for p, group, names, hyper, lo, hi, keys in self._slots:
            state = states[p]
            if not state:
                self._new_states.append(p)
            opt._prepare(group, p, state)
            counter = state.get("step")
            old = None
            if counter is not None:
                old = counter.value().item()
                counters.append((counter, old))
            opt._advance(state)
            # parameters of one group at one step count share their scalars: computed once
            key = (id(group), old, p.dtype)
            row = rows.get(key)
            if row is None:
                row = rows[key] = _scalar_row(opt, group, state, p.dtype, names)
            hyper[lo:hi] = row
            for k in keys:
                if state.get(k) is None:
                    hyper[hi - 1] = 1                                # "fresh": no buffer yet
                    break
        return counters

    def _state_arrays(self) -> list:
        """The arrays the C reads and writes beside the batch: the parameters', the frozen
        tensors', the state buffers' (the optimizer's own, or zeros of ours until the first
        step puts them into its state) and the scalars."""
        vetted, n = self._vetted, len(self._params)
        out = [_own_array(p, p.dtype, vetted, k) for k, (_, p, _) in enumerate(self._params)] + \
            [v._value for v in self._fixed]
        states = self.optimizer.state
        for j, (p, k) in enumerate(self._buffers):
            buf = states[p].get(k)
            if buf is not None:
                out.append(_own_array(buf, p.dtype, vetted, n + j))
            else:
                arr = self._private.get((id(p), k))
                if arr is None:
                    arr = self._private[(id(p), k)] = np.zeros(p.shape, p.dtype)
                out.append(arr)
        return out + self._hyper

    def _publish_state(self) -> None:
        """After a step: new buffers join the optimizer's state (sharing the arrays the C wrote),
        and the versions of everything written in place move on."""
        states = self.optimizer.state
        for p, k in self._buffers:
            state = states[p]
            buf = state.get(k)
            if buf is None:
                state[k] = Variable(self._private.pop((id(p), k)))
            else:
                buf._vbox[0] += 1
        for _, p, _ in self._params:
            p._vbox[0] += 1
            if not states.get(p, True):
                del states[p]

    @property
    def source(self) -> str:
        """The C of the step (compiled at the first call)."""
        if self.fn is None:
            raise RuntimeError("compile_step: the step is compiled at its first call, from the shapes of "
                               "its inputs; call it once before reading .source")
        return self.fn.forward.source

    @property
    def path(self):
        return None if self.fn is None else self.fn.forward.path


_value = attrgetter("_value")


def _scalar_row(opt, group: dict, state: dict, dtype, names: list) -> np.ndarray:
    """One parameter's row of this step's scalars in the C's order (`names`), then "fresh" as 0
    (its buffers exist; the general path sets it for one that has none yet)."""
    scalars = opt._scalars(group, state, dtype)
    return np.array([scalars[name] for name in names] + [0], dtype)


class _Steady:
    """A step in steady state, as the step before left it: every trained parameter has its
    whole state in the optimizer (its buffers, its step count). A call then checks with a few
    identity tests that nothing the step reads was replaced since (a parameter's state dict,
    a buffer in it, the array a Variable holds), counts the step, writes its scalars and calls
    the C with the same arrays, without the general path's per-parameter bookkeeping. A call
    that finds anything changed returns None, and the general path runs."""

    @classmethod
    def of(cls, step: CompiledStep) -> "_Steady | None":
        opt = step.optimizer
        states = opt.state
        if step._private:
            return None
        self = cls()
        self.params, self.dicts, self.slots, self.counters = [], [], [], []
        self.entry_dicts, self.entry_keys, self.entry_vars = [], [], []
        for p, group, names, hyper, lo, hi, keys in step._slots:
            state = states.get(p)
            if not state:
                return None
            for k in keys + (("step",) if opt.counts_steps else ()):
                v = state.get(k)
                if not isinstance(v, Variable) or v._value is None:
                    return None
                self.entry_dicts.append(state)
                self.entry_keys.append(k)
                self.entry_vars.append(v)
            counter = None
            if opt.counts_steps:
                counter = state["step"]._value
                if counter.shape != () or not counter.flags.writeable:
                    return None
                self.counters.append(counter)
            self.params.append(p)
            self.dicts.append(state)
            self.slots.append((group, names, hyper, lo, hi, state, p.dtype, len(self.counters) - 1))
        self.arrays = step._state_arrays()
        buffers = [states[p][k] for p, k in step._buffers]
        held = [p for _, p, _ in step._params] + list(step._fixed) + buffers
        self.watched = held + [state["step"] for state in self.dicts if opt.counts_steps]
        self.values = [v._value for v in self.watched]
        if any(a is not v for a, v in zip(self.arrays, self.values[:len(held)])):
            return None
        self.bumped = [p for _, p, _ in step._params] + buffers + self.watched[len(held):]
        # consecutive parameters of one group whose scalars lie side by side: one 2-D view, so
        # that a step writes their shared row once (when their step counts agree)
        runs: list = []
        for slot in self.slots:
            group, _, hyper, lo, hi, _, dtype, _ = slot
            last = runs[-1][-1][-1] if runs else None
            if last and last[0] is group and last[2] is hyper and last[4] == lo and \
                    last[4] - last[3] == hi - lo and last[6] == dtype:
                runs[-1][-1].append(slot)
            else:
                runs.append((group, [slot]))
        self.runs = []
        for group, run in runs:
            first, end = run[0], run[-1]
            view = first[2][first[3]:end[4]].reshape(len(run), -1)
            self.runs.append((group, view, run, [slot[-1] for slot in run]))
        self.optimizer = opt
        # the forward entry's generated caller itself (Function.__call__ looks it up each time)
        self.call = getattr(step._call, "__dict__", {}).get("_fast") or step._call
        return self

    def __call__(self, step: CompiledStep, arrays: list) -> "float | None":
        opt = self.optimizer
        states = opt.state
        if not (all(map(is_, map(states.get, self.params), self.dicts))
                and all(map(is_, map(dict.get, self.entry_dicts, self.entry_keys), self.entry_vars))
                and all(map(is_, map(_value, self.watched), self.values))):
            return None
        counts = [c.item() for c in self.counters]
        for c, n in zip(self.counters, counts):
            c.fill(n + 1.0)                         # count_step's float32 step
        for group, view, run, ks in self.runs:
            _, names, _, _, _, state, dtype, k = run[0]
            if k < 0 or [counts[i] for i in ks].count(counts[k]) == len(ks):
                view[...] = _scalar_row(opt, group, state, dtype, names)
                continue
            for _, names, hyper, lo, hi, state, dtype, _ in run:    # step counts that differ
                hyper[lo:hi] = _scalar_row(opt, group, state, dtype, names)
        try:
            loss = self.call(*arrays, *self.arrays)
        except BaseException:
            for c, n in zip(self.counters, counts):  # the step did not happen
                c.fill(n)
            raise
        for v in self.bumped:
            v._vbox[0] += 1
        return float(loss[0])


def _probe_state(opt, group, p) -> dict:
    """A state like the one `_scalars` sees at a step, to learn the names of its scalars."""
    state = {}
    opt._prepare(group, p, state)
    if state:
        opt._advance(state)
    return state


def compile_step(model: Module, loss_fn: Callable, optimizer: Optimizer, backend: str = "c") -> CompiledStep:
    """One compiled C call per training step: `loss = step(*inputs, target)` computes
    `loss_fn(model(*inputs), target)`, its gradients with respect to the model's parameters,
    and `optimizer`'s update of the parameters and of its state, all in place, and returns the
    loss as a Python float. The numbers are those of the eager loop
    (`zero_grad(); loss.backward(); optimizer.step()`). Compiled at the first call, for the
    shapes and dtypes of its inputs; later calls are checked against them as sg.compile's are."""
    return CompiledStep(model, loss_fn, optimizer, backend)
