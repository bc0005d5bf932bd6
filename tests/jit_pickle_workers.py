"""Module-level functions for tests/test_pickle.py's sg.jit cases (pickle finds functions by
reference, so a worker process imports this module). No torch import: workers start fast."""
import numpy as np

import symgrad as sg


def loss(w, x):
    return sg.sum(sg.tanh(x @ w) ** 2)


def grad_of_loss(w, x):
    return sg.func.grad(loss)(w, x)


jitted_loss = sg.jit(loss)
jitted_grad = sg.jit(grad_of_loss)      # (a transform's result is a closure: jit a named function)


def call(fn, *args):
    return np.asarray(fn(*args))
