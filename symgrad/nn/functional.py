"""PyTorch's `torch.nn.functional` names for symgrad's losses and activations."""
from symgrad.functional import log_softmax, relu, sigmoid, softmax, softplus, tanh
from symgrad.losses import binary_cross_entropy_with_logits, cross_entropy, mse_loss, one_hot


def leaky_relu(x, negative_slope=0.01):
    from symgrad import functional as F
    return F.where(F.gt(x, 0), x, F.mul(x, negative_slope))


def linear(x, weight, bias=None):
    from symgrad import functional as F
    out = F.matmul(x, F.t(weight))
    return out if bias is None else F.add(out, bias)


__all__ = ["binary_cross_entropy_with_logits", "cross_entropy", "log_softmax", "mse_loss", "one_hot",
           "relu", "sigmoid", "softmax", "softplus", "tanh", "leaky_relu", "linear"]
