"""`from symgrad.autograd import Variable`, as in the PyTorch tutorials."""
from symgrad.autodiff import grad, gradcheck
from symgrad.variable import AccumulateGrad, Function, Variable

__all__ = ["Variable", "Function", "AccumulateGrad", "grad", "gradcheck"]
