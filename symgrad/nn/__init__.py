"""symgrad.nn: PyTorch's `torch.nn` (Module, Parameter, containers, layers, losses, init and
functional) over symgrad's Variables."""
from symgrad.nn import functional, init
from symgrad.nn.modules import (BCEWithLogitsLoss, CrossEntropyLoss, Dropout, Embedding, Flatten, GELU,
                                Identity, L1Loss, LayerNorm, LeakyReLU, Linear, LogSoftmax, Module,
                                ModuleDict, ModuleList, MSELoss, NLLLoss, ReLU, Sequential, Sigmoid, SiLU,
                                Softmax, Tanh)
from symgrad.nn.parameter import Parameter

__all__ = ["functional", "init", "Parameter", "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout",
           "Embedding", "Flatten", "GELU", "Identity", "L1Loss", "LayerNorm", "LeakyReLU", "Linear",
           "LogSoftmax", "Module", "ModuleDict", "ModuleList", "MSELoss", "NLLLoss", "ReLU", "Sequential",
           "Sigmoid", "SiLU", "Softmax", "Tanh"]
