"""Cases for sg.func, written once against a namespace `N` of array functions (PyTorch's names)
and a namespace `F` of transforms, and run with symgrad (sg / sg.func), PyTorch (torch /
torch.func) and JAX (jax.numpy / jax, in float64): tests/test_func.py compares the numbers.

`results(N, F, arr, out)` computes every case and returns {name: numpy array}; `arr` makes a
framework array from numpy, `out` turns a framework result back into numpy."""
from __future__ import annotations

import numpy as np

R = np.random.default_rng(14)
X0 = np.array(0.7)
XV = R.uniform(-1.0, 1.0, 5)
CT = R.uniform(-1.0, 1.0, 5)
TV = R.uniform(-1.0, 1.0, 5)
XM = R.uniform(-1.0, 1.0, (3, 5))
N_IN, N_HID, N_OUT, BATCH = 4, 6, 3, 8
PARAMS = (R.normal(0, 0.5, (N_IN, N_HID)), R.normal(0, 0.1, N_HID),
          R.normal(0, 0.5, (N_HID, N_OUT)), R.normal(0, 0.1, N_OUT))
X = R.normal(0, 1.0, (BATCH, N_IN))
Y = np.eye(N_OUT)[R.integers(0, N_OUT, BATCH)]


def poly(N, x):
    return x ** 3 - 2 * x ** 2 + 3 * x + 1


def smooth(N, x):
    return N.sum(N.sin(x) * x ** 2 + N.tanh(x) * N.exp(-x))


def vecfn(N, x):
    return N.tanh(x) * x + N.sum(x ** 2) * N.sin(x)


def two_args(N, x, y):
    return N.sum(N.sin(x) * y ** 2) + N.sum(x * y)


def mlp_loss(N, W1, b1, W2, b2, x, y):
    """Softmax cross-entropy of a one-hidden-layer MLP, mean over the batch (one-hot labels)."""
    h = N.tanh(N.matmul(x, W1) + b1)
    z = N.matmul(h, W2) + b2
    return -N.sum(y * N.log_softmax(z, -1)) / x.shape[0]


def example_loss(N, params, x, y):
    """The loss of one example (x of shape (N_IN,)): what vmap(grad) maps over the batch."""
    W1, b1, W2, b2 = params
    h = N.tanh(N.matmul(x, W1) + b1)
    z = N.matmul(h, W2) + b2
    return -N.sum(y * N.log_softmax(z, -1))


def results(N, F, arr, out):
    r = {}

    def put(name, value):
        if isinstance(value, (tuple, list)):
            for k, v in enumerate(value):
                put(f"{name}.{k}", v)
        else:
            r[name] = np.asarray(out(value), dtype=np.float64)

    x0, xv, xm = arr(X0), arr(XV), arr(XM)
    p = lambda x: poly(N, x)                                        # noqa: E731
    s = lambda x: smooth(N, x)                                      # noqa: E731
    v = lambda x: vecfn(N, x)                                       # noqa: E731
    put("poly_grad", F.grad(p)(x0))
    put("poly_grad2", F.grad(F.grad(p))(x0))
    put("poly_grad3", F.grad(F.grad(F.grad(p)))(x0))
    put("poly_value_and_grad", F.value_and_grad(p)(x0))
    put("smooth_grad", F.grad(s)(xv))
    put("smooth_hessian", F.hessian(s)(xv))
    put("two_args_grad", F.grad(lambda x, y: two_args(N, x, y), argnums=(0, 1))(xv, arr(CT)))
    put("two_args_grad1", F.grad(lambda x, y: two_args(N, x, y), argnums=1)(xv, arr(CT)))
    put("vec_jacrev", F.jacrev(v)(xv))
    put("vec_jacfwd", F.jacfwd(v)(xv))
    put("vec_jacfwd_jacrev", F.jacfwd(F.jacrev(v))(xv))
    value, vjp_fn = F.vjp(v, xv)
    put("vec_vjp_value", value)
    put("vec_vjp", vjp_fn(arr(CT)))
    put("vec_jvp", F.jvp(v, (xv,), (arr(TV),)))
    put("vec_vmap", F.vmap(v)(xm))
    put("vec_vmap_out1", F.vmap(v, out_dims=1)(xm))
    put("vec_vmap_in1", F.vmap(v, in_dims=1)(arr(XM.T.copy())))
    put("smooth_vmap_grad", F.vmap(F.grad(s))(xm))
    put("vec_vmap_jacrev", F.vmap(F.jacrev(v))(xm))
    put("vmap_vmap", F.vmap(F.vmap(lambda a, b: N.sin(a) * b), in_dims=(0, None))(xm, xv))

    params = tuple(arr(w) for w in PARAMS)
    xb, yb = arr(X), arr(Y)
    loss = lambda W1, b1, W2, b2: mlp_loss(N, W1, b1, W2, b2, xb, yb)     # noqa: E731
    put("mlp_value_and_grad", F.value_and_grad(loss, argnums=(0, 1, 2, 3))(*params))
    put("mlp_grad_b2_hessian", F.hessian(lambda b2: loss(params[0], params[1], params[2], b2))(params[3]))
    hidden = lambda: N.tanh(N.matmul(xb, params[0]) + params[1])          # noqa: E731
    put("mlp_jacrev_W2", F.jacrev(lambda W2: N.log_softmax(N.matmul(hidden(), W2), -1))(params[2]))
    ex = lambda ps, x, y: example_loss(N, ps, x, y)                # noqa: E731
    put("mlp_per_example_grads", F.vmap(F.grad(ex), in_dims=(None, 0, 0))(params, xb, yb))
    put("mlp_per_example_losses", F.vmap(ex, in_dims=(None, 0, 0))(params, xb, yb))
    return r


# --- the namespaces ----------------------------------------------------------------------------

class TorchFunc:
    """torch.func with JAX's value_and_grad (torch.func calls it grad_and_value, (grad, value))."""

    def __init__(self):
        import torch.func as tf
        self.tf = tf
        for name in ("grad", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "vmap"):
            setattr(self, name, getattr(tf, name))

    def value_and_grad(self, f, argnums=0):
        gv = self.tf.grad_and_value(f, argnums=argnums)

        def vg(*args):
            g, value = gv(*args)
            return value, g
        return vg


class Jax:
    """jax.numpy with PyTorch's names, and jax's transforms with torch.func's keywords. The
    transforms that return functions are jax.jit-ed (four times faster here than JAX's eager
    dispatch of every op; the numbers agree to rounding)."""

    def __init__(self):
        import jax
        import jax.numpy as jnp
        self.jax, self.jnp = jax, jnp
        for name in ("sin", "tanh", "exp", "matmul", "sum"):
            setattr(self, name, getattr(jnp, name))
        self.vjp, self.jvp = jax.vjp, jax.jvp
        for name in ("grad", "value_and_grad", "jacrev", "jacfwd", "hessian"):
            setattr(self, name, self._jitted(getattr(jax, name)))

    def _jitted(self, transform):
        return lambda f, *args, **kwargs: self.jax.jit(transform(f, *args, **kwargs))

    def log_softmax(self, x, dim):
        return self.jax.nn.log_softmax(x, axis=dim)

    def vmap(self, f, in_dims=0, out_dims=0):
        return self.jax.jit(self.jax.vmap(f, in_axes=in_dims, out_axes=out_dims))


def run_jax(path):
    """In a subprocess (float64 for JAX there only): JAX's results, saved to `path` (.npz)."""
    import jax
    jax.config.update("jax_enable_x64", True)
    J = Jax()
    np.savez(path, **results(J, J, lambda a: J.jnp.asarray(a), np.asarray))
