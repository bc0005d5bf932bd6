"""The generalisation workloads: models written once against a module `T` with PyTorch's names
(`T` is symgrad, torch, or `Jnp` below for JAX), so every framework runs the same mathematics.
Each model takes its inputs in the order of its workload's args and returns the scalar loss
(for the Hessian-vector product: the function whose Hessian is taken).

The reference for these is torch in float64 (forward and autograd), not a hand derivation."""
from __future__ import annotations

import math

SQRT_2_OVER_PI = 0.7978845608028654


def gelu(T, x):
    # the tanh form, written out, so every framework computes the same function
    return 0.5 * x * (1 + T.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)))


def layer_norm(T, x, eps=1e-5):
    m = T.mean(x, -1, keepdim=True)
    d = x - m
    v = T.mean(d * d, -1, keepdim=True)
    return d / T.sqrt(v + eps)


def layernorm(T, x, w, b):
    return T.sum(T.tanh(layer_norm(T, x) * w + b))


def rmsnorm(T, x, w):
    r = 1 / T.sqrt(T.mean(x * x, -1, keepdim=True) + 1e-6)
    return T.sum(T.tanh(x * r * w))


def softmax(T, x, t):
    return T.sum(T.softmax(x, -1) * t)


def log_softmax(T, x, t):
    return T.sum(T.log_softmax(x, -1) * t)


def logsumexp(T, x):
    return T.sum(T.logsumexp(x, -1))


def attention(T, q, k, v):
    s = T.matmul(q, T.transpose(k, 0, 1)) * (1 / math.sqrt(q.shape[-1]))
    return T.sum(T.tanh(T.matmul(T.softmax(s, -1), v)))


def _mha(T, x, wq, wk, wv, wo, heads):
    B, S, D = x.shape
    hd = D // heads

    def split(y):
        return T.permute(T.reshape(y, (B, S, heads, hd)), (0, 2, 1, 3))
    q, k, v = split(T.matmul(x, wq)), split(T.matmul(x, wk)), split(T.matmul(x, wv))
    p = T.softmax(T.matmul(q, T.transpose(k, -2, -1)) * (1 / math.sqrt(hd)), -1)
    o = T.reshape(T.permute(T.matmul(p, v), (0, 2, 1, 3)), (B, S, D))
    return T.matmul(o, wo)


def mha(T, x, wq, wk, wv, wo):
    return T.sum(T.tanh(_mha(T, x, wq, wk, wv, wo, 4)))


def block(T, x, wq, wk, wv, wo, w1, b1, w2, b2):
    h = x + _mha(T, layer_norm(T, x), wq, wk, wv, wo, 4)
    out = h + T.matmul(gelu(T, T.matmul(layer_norm(T, h), w1) + b1), w2) + b2
    return T.mean(out * out)


def mlp(T, x, w1, b1, w2, b2, w3, b3):
    h = gelu(T, T.matmul(x, w1) + b1)
    h = gelu(T, T.matmul(h, w2) + b2)
    out = T.matmul(h, w3) + b3
    return T.mean(out * out)


def rnn(T, xs, wx, wh, b):
    h = T.tanh(T.matmul(xs[0], wx) + b)
    for t in range(1, xs.shape[0]):
        h = T.tanh(T.matmul(xs[t], wx) + T.matmul(h, wh) + b)
    return T.sum(h * h)


def hvp_objective(T, w, X):
    # the function whose Hessian times v is asked for: sum(tanh(X @ w)^2)
    y = T.tanh(T.matmul(X, w))
    return T.sum(y * y)


def bmm_tanh(T, a, b):
    return T.sum(T.tanh(T.matmul(a, b)))


MODELS = {f.__name__: f for f in (layernorm, rmsnorm, softmax, log_softmax, logsumexp, attention, mha,
                                  block, mlp, rnn, hvp_objective, bmm_tanh)}


class Jnp:
    """PyTorch's names over jax.numpy, for the models above."""

    def __init__(self):
        import jax
        import jax.numpy as jnp
        self.jax, self.jnp = jax, jnp
        for name in ("tanh", "sqrt", "matmul", "reshape", "exp"):
            setattr(self, name, getattr(jnp, name))

    def sum(self, x):
        return self.jnp.sum(x)

    def mean(self, x, dim=None, keepdim=False):
        return self.jnp.mean(x, axis=dim, keepdims=keepdim)

    def softmax(self, x, dim):
        return self.jax.nn.softmax(x, axis=dim)

    def log_softmax(self, x, dim):
        return self.jax.nn.log_softmax(x, axis=dim)

    def logsumexp(self, x, dim):
        return self.jax.nn.logsumexp(x, axis=dim)

    def transpose(self, x, d0, d1):
        return self.jnp.swapaxes(x, d0, d1)

    def permute(self, x, dims):
        return self.jnp.transpose(x, dims)
