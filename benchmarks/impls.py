"""One builder per implementation. A builder is made from a workload (defining its graph, if it
has one: untimed), then

    compile()          what the framework calls compiling (sg.compile, pytensor.function,
                       torch.compile / jax.jit wrappers: those compile on the first call)
    prepare(arrays)    numpy inputs -> the framework's own (untimed)
    call(native)       one forward + all gradients, finished (timed)
    to_numpy(out)      -> (value, [gradients]) as numpy arrays (untimed)

Every peer is imported lazily, so one that is not installed is reported, not raised."""
from __future__ import annotations

import importlib
import os

import numpy as np

import models
import workloads as W


class NotApplicable(Exception):
    """This implementation has no version of this workload (shown as n/a, not as an error)."""


def _is_model(wl):
    return wl.kind in models.MODELS


def _hvp_mode(wl):
    return wl.params.get("mode") == "hvp"

# ---------------------------------------------------------------------------------------------
# symgrad


class Symgrad:
    name = "symgrad"

    def __init__(self, wl):
        import symgrad as sg
        self.sg, self.wl = sg, wl
        vs = [sg.Variable(shape=a.shape, dtype=a.dtype, name=a.name, requires_grad=a.grad) for a in wl.args]
        self.inputs = vs
        k = wl.kind
        self.hvp = _hvp_mode(wl)
        if self.hvp:
            w, X, v = vs
            g, = sg.grad(models.MODELS[k](sg, w, X), [w])
            self.out, = sg.grad(sg.sum(g * v), [w])
        elif _is_model(wl):
            self.loss = models.MODELS[k](sg, *vs)
        elif k == "w1":
            x, w, b = vs
            self.loss = sg.sum(sg.tanh(x * w + b) ** 2 + sg.exp(-x) * 0.5)
        elif k == "w2":
            x, y, W1, b1, W2, b2 = vs
            self.loss = sg.cross_entropy(sg.relu(x @ W1 + b1) @ W2 + b2, y)
        elif k == "w3":
            (x,) = vs
            self.loss = sg.sum(sg.mean(x ** 2, dim=1))
        elif k == "w4":
            A, B = vs
            self.loss = sg.sum(A @ B)
        elif k == "w5":
            x, y = vs
            self.loss = sg.sum(x * y + x)

    def compile(self):
        self.fn = self.sg.compile(self.inputs, self.out if self.hvp else self.loss)

    def finish_background(self, native):
        """sg.compile builds forward and backward in the background too: wait for them (by calling
        them once) so that no compiler runs while we time value_and_grad."""
        self.fn(*native)
        if not self.hvp:
            self.fn.backward(*native)

    def prepare(self, arrays):
        return arrays

    def call(self, native):
        return self.fn(*native) if self.hvp else self.fn.value_and_grad(*native)

    def to_numpy(self, out):
        if self.hvp:
            return out, []
        value, grads = out
        return value, list(grads)


# ---------------------------------------------------------------------------------------------
# numpy, by hand


class Numpy:
    name = "numpy"

    def __init__(self, wl):
        if wl.kind not in W.NUMPY:
            raise NotApplicable("no hand-written numpy version")
        self.f = W.NUMPY[wl.kind]

    def compile(self):
        pass

    def prepare(self, arrays):
        return arrays

    def call(self, native):
        return self.f(*native)

    def to_numpy(self, out):
        return out


# ---------------------------------------------------------------------------------------------
# PyTorch: eager and torch.compile


def _torch_loss(kind):
    import torch
    import torch.nn.functional as F
    if kind in models.MODELS:
        return lambda *a: models.MODELS[kind](torch, *a)
    if kind == "w1":
        return lambda x, w, b: torch.sum(torch.tanh(x * w + b) ** 2 + torch.exp(-x) * 0.5)
    if kind == "w2":
        return lambda x, y, W1, b1, W2, b2: F.cross_entropy(torch.relu(x @ W1 + b1) @ W2 + b2, y)
    if kind == "w3":
        return lambda x: torch.sum(torch.mean(x ** 2, dim=1))
    if kind == "w4":
        return lambda A, B: torch.sum(A @ B)
    if kind == "w5":
        return lambda x, y: torch.sum(x * y + x)


class Torch:
    name = "torch"

    def __init__(self, wl):
        import torch
        self.torch, self.wl = torch, wl
        self.f = _torch_loss(wl.kind)
        self.gi = wl.grad_index

    def compile(self):
        pass

    def prepare(self, arrays):
        out = []
        for k, a in enumerate(arrays):
            t = self.torch.from_numpy(a)
            out.append(t.requires_grad_(True) if k in self.gi else t)
        return out

    def call(self, native):
        if _hvp_mode(self.wl):
            return self._hvp(*native), ()
        loss = self.f(*native)
        grads = self.torch.autograd.grad(loss, [native[k] for k in self.gi])
        return loss.detach(), grads

    def _hvp(self, w, X, v):
        g, = self.torch.autograd.grad(self.f(w, X), [w], create_graph=True)
        hv, = self.torch.autograd.grad(self.torch.sum(g * v), [w])
        return hv

    def to_numpy(self, out):
        loss, grads = out
        return loss.detach().numpy(), [g.numpy() for g in grads]


class TorchCompile(Torch):
    name = "torch.compile"

    def compile(self):
        # dynamic=False: one static-shape graph per workload, as the others get.
        if _hvp_mode(self.wl):
            # double backward does not go through compiled autograd: compile torch.func's
            # forward-over-reverse product, as JAX's is compiled
            import torch.func as tf
            f = models.MODELS[self.wl.kind]
            self._hvp = self.torch.compile(
                lambda w, X, v: tf.jvp(lambda w_: tf.grad(lambda u: f(self.torch, u, X))(w_), (w,), (v,))[1],
                dynamic=False)
        self.f = self.torch.compile(_torch_loss(self.wl.kind), dynamic=False)


# ---------------------------------------------------------------------------------------------
# JAX


class Jax:
    name = "jax"

    def __init__(self, wl):
        import jax
        import jax.numpy as jnp
        self.jax, self.jnp, self.wl = jax, jnp, wl
        k = wl.kind
        if _is_model(wl):
            J = models.Jnp()

            def f(*a):
                return models.MODELS[k](J, *a)
        elif k == "w1":
            def f(x, w, b):
                return jnp.sum(jnp.tanh(x * w + b) ** 2 + jnp.exp(-x) * 0.5)
        elif k == "w2":
            def f(x, y, W1, b1, W2, b2):
                logits = jax.nn.relu(x @ W1 + b1) @ W2 + b2
                logp = jax.nn.log_softmax(logits, axis=1)
                return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
        elif k == "w3":
            def f(x):
                return jnp.sum(jnp.mean(x ** 2, axis=1))
        elif k == "w4":
            def f(A, B):
                return jnp.sum(A @ B)
        elif k == "w5":
            def f(x, y):
                return jnp.sum(x * y + x)
        self.f = f

    def compile(self):
        jax = self.jax
        if _hvp_mode(self.wl):
            f = self.f
            self.g = jax.jit(lambda w, X, v: (jax.jvp(jax.grad(lambda u: f(u, X)), (w,), (v,))[1], ()))
        else:
            self.g = jax.jit(jax.value_and_grad(self.f, argnums=tuple(self.wl.grad_index)))

    def prepare(self, arrays):
        # x64 is off (JAX's default): labels go in as int32.
        return [self.jax.device_put(a.astype(np.int32) if a.dtype == np.int64 else a) for a in arrays]

    def call(self, native):
        return self.jax.block_until_ready(self.g(*native))

    def to_numpy(self, out):
        value, grads = out
        return np.asarray(value), [np.asarray(g) for g in grads]


# ---------------------------------------------------------------------------------------------
# PyTensor


PYTENSOR_MODE = os.environ.get("BENCH_PYTENSOR_MODE", "CVM")   # its C backend (C thunks, C VM)


class Pytensor:
    name = "pytensor"

    def __init__(self, wl):
        if _is_model(wl):
            raise NotApplicable("the model workloads are not written for PyTensor")
        import pytensor
        import pytensor.tensor as pt
        pytensor.config.floatX = "float32"     # Python constants stay float32, as in the others
        self.pytensor, self.wl = pytensor, wl
        vs = [pt.tensor(a.name, dtype=a.dtype, shape=a.shape) for a in wl.args]
        self.inputs = vs
        k = wl.kind
        if k == "w1":
            x, w, b = vs
            loss = pt.sum(pt.tanh(x * w + b) ** 2 + pt.exp(-x) * 0.5)
        elif k == "w2":
            x, y, W1, b1, W2, b2 = vs
            logits = pt.maximum(x @ W1 + b1, 0) @ W2 + b2
            logp = pt.special.log_softmax(logits, axis=1)
            loss = -pt.mean(logp[pt.arange(wl.args[0].shape[0]), y])
        elif k == "w3":
            (x,) = vs
            loss = pt.sum(pt.mean(x ** 2, axis=1))
        elif k == "w4":
            A, B = vs
            loss = pt.sum(A @ B)
        elif k == "w5":
            x, y = vs
            loss = pt.sum(x * y + x)
        self.outputs = [loss] + list(pytensor.grad(loss, [vs[i] for i in wl.grad_index]))

    def compile(self):
        self.fn = self.pytensor.function(self.inputs, self.outputs, mode=PYTENSOR_MODE)

    def prepare(self, arrays):
        return arrays

    def call(self, native):
        return self.fn(*native)

    def to_numpy(self, out):
        return out[0], list(out[1:])


# ---------------------------------------------------------------------------------------------

IMPLS = [("symgrad", Symgrad, "symgrad"), ("numpy", Numpy, "numpy"), ("torch", Torch, "torch"),
         ("torch.compile", TorchCompile, "torch"), ("jax", Jax, "jax"), ("pytensor", Pytensor, "pytensor")]


def available():
    """[(name, builder class or None, note)] for every implementation."""
    out = []
    for name, cls, module in IMPLS:
        try:
            mod = importlib.import_module(module)
            out.append((name, cls, getattr(mod, "__version__", "")))
        except Exception as e:  # noqa: BLE001  (any import failure means: skip it, say why)
            out.append((name, None, f"not installed ({type(e).__name__}: {e})".splitlines()[0]))
    return out
