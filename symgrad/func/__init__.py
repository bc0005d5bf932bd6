"""`sg.func`: function transforms as in torch.func and JAX, each a graph-to-graph transform
(see symgrad/func/transforms.py for the differentiation transforms and symgrad/func/batch.py
for vmap), composing with each other and with sg.jit."""
from symgrad.func.batch import vmap
from symgrad.func.common import TracedValueError
from symgrad.func.transforms import grad, hessian, jacfwd, jacrev, jvp, value_and_grad, vjp

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "vmap",
           "TracedValueError"]
