"""`from symgrad.autograd import Variable`, as in the PyTorch tutorials."""
from symgrad.autodiff import gradcheck
from symgrad.engine import autograd_grad as grad
from symgrad.variable import AccumulateGrad, Function, Variable

__all__ = ["Variable", "Function", "AccumulateGrad", "grad", "gradcheck"]
