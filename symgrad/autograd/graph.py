"""The backward graph as PyTorch shows it (`torch.autograd.graph`): `Node` is the class of
every `grad_fn` object (`<MulBackward0 ...>`, `AccumulateGrad`, a custom function's
`<...Backward>`), with `next_functions` and `name()`."""
from symgrad.variable import AccumulateGrad, Function as Node

__all__ = ["Node", "AccumulateGrad"]
