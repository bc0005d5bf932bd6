# ruff: noqa: F401  (this module re-exports the public API)
"""symgrad: a symbolic-graph compiler for automatic differentiation.

Build graphs with PyTorch's autograd API, differentiate them by source transformation,
and run them through generated C (or CUDA) that you can read."""
import os as _os

# OpenMP threads that spin after a parallel loop starve the BLAS threads that run next on a
# small machine (3 s instead of 0.3 s for an MLP step here); they must sleep instead. This
# has to be set before libgomp is loaded, which happens with the first compiled function.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from symgrad import dtypes  # noqa: E402
from symgrad import functional as _F  # noqa: E402
from symgrad import indexing as _indexing  # noqa: E402
from symgrad import methods as _methods  # noqa: F401  (attaches Variable's methods)
from symgrad import engine as _engine  # noqa: F401  (connects Variable.backward() to the compiler)
from symgrad import variable as _variable  # noqa: E402
from symgrad.autodiff import grad, gradcheck
from symgrad.backends.threads import get_num_threads, set_num_threads
from symgrad.build import CompileError
from symgrad.compile import compile
from symgrad.step import compile_step
from symgrad.creation import (BoolTensor, DoubleTensor, FloatTensor, IntTensor, LongTensor, arange,
                              as_tensor, empty, empty_like, eye, from_numpy, full, full_like, linspace,
                              bernoulli, normal, ones, ones_like, rand, rand_like, randint, randn,
                              randn_like, randperm, tensor, zeros, zeros_like)
from symgrad import generator as random  # noqa: E402  (torch.random: manual_seed, seed, ...)
from symgrad.generator import (Generator, default_generator, get_rng_state, initial_seed, manual_seed,
                               seed, set_rng_state)
from symgrad import display as _display
from symgrad.display import debugprint, to_dot
# The losses as torch.nn.functional has them (symgrad/nn/functional.py, over symgrad/losses.py).
from symgrad.nn.functional import binary_cross_entropy_with_logits, cross_entropy, mse_loss, one_hot
from symgrad.functional import (abs, add, amax, amin, argmax, argmin,
                                bmm, broadcast_to, cast, cat, clamp, clip, concat, cos, div,
                                dot, eq, exp, expand, flatten, floor, floor_divide, fmod, ge, gt, le, log,
                                log_softmax, logsumexp, lt, matmul, max, maximum, mean, min, minimum, mm,
                                mul, mv, ne, neg, norm, permute, pow, relu, remainder,
                                reshape, sigmoid, sign, sin, softmax, softplus, sqrt, squeeze, stack,
                                stop_gradient, sub, sum, t, tanh, transpose, unsqueeze, view)
from symgrad.functional import ceil, erf, softsign
from symgrad.selection import (gather, index_add, index_put, index_select, masked_fill, masked_select,
                               nonzero, scatter, scatter_add, take_along_dim, where)
from symgrad.variable import Size, Variable, enable_grad, is_grad_enabled, no_grad
from symgrad import autograd, nn  # noqa: E402
from symgrad import optim  # noqa: E402
# The grad modes of symgrad.autograd (decorators with or without parentheses) replace the
# variable module's plain ones in the public API.
from symgrad.autograd.grad_mode import enable_grad, no_grad  # noqa: E402, F811
from symgrad.autograd.grad_mode import inference_mode, is_inference_mode_enabled, set_grad_enabled  # noqa: E402

# In-place operations (fill_, copy_, x[k] = v) are recorded with the functional API; a
# Variable prints through symgrad.display.
_variable.connect(functional=_F, indexing=_indexing, variable_repr=_display.variable_repr)

Tensor = Variable
# The dtypes, as PyTorch names them (torch.int is int32, torch.long int64).
dtype, finfo, iinfo = dtypes.dtype, dtypes.finfo, dtypes.iinfo
float32, float64, int32, int64 = dtypes.float32, dtypes.float64, dtypes.int32, dtypes.int64
bool = dtypes.bool_
float, double, long, int = float32, float64, int64, int32
subtract, multiply, divide = sub, mul, div

# Devices, the default dtype, whole-Variable comparisons, division's rounding modes, numpy's
# protocols, and PyTorch's parameter names (symgrad/signatures.py) in front of all of it.
from symgrad.devices import device, get_default_device, get_default_dtype, set_default_device, set_default_dtype  # noqa: E402,E501
from symgrad import comparisons as _comparisons, numpy_interop as _numpy_interop, signatures as _signatures  # noqa: E402,E501
from symgrad.comparisons import allclose, div, equal, isclose, true_divide  # noqa: E402
divide = div
_comparisons.attach(Variable)
_numpy_interop.attach(Variable)

from symgrad.display import get_printoptions, set_printoptions  # noqa: E402
from symgrad.queries import is_floating_point, is_tensor, numel  # noqa: E402
from symgrad.tensor_math import all, any, outer, reciprocal, rsqrt, square, std, std_mean, unique, var, var_mean  # noqa: E402,E501
from symgrad.tensor_math import IN_PLACE_FUNCTIONS as _in_place_functions  # noqa: E402
globals().update(_in_place_functions)
from symgrad._version import __version__  # noqa: E402

# Compiling Python functions by tracing, and function transforms (issue 14).
from symgrad import func  # noqa: E402
from symgrad.jit import jit  # noqa: E402
# The build cache, and DLPack (symgrad/cache.py, symgrad/dlpack.py).
from symgrad.cache import cache_info, clear_cache  # noqa: E402
from symgrad import dlpack as _dlpack  # noqa: E402
from symgrad.dlpack import from_dlpack  # noqa: E402
_dlpack.attach(Variable)
# The code generator, which every compile needs (eager backward too), is imported with symgrad,
# as JAX and torch import their compilers: a first sg.compile then does not wait for it.
from symgrad.codegen import render as _render  # noqa: E402,F401

_signatures.install(globals(), Variable)      # last: it wraps what is defined above

__all__ = [n for n in dir() if not n.startswith("_")]


def __getattr__(name):
    # sg.cuda (DeviceArray, to_device, is_available, ...) is imported when first used.
    if name == "cuda":
        import importlib
        return importlib.import_module("symgrad.cuda")
    raise AttributeError(f"module 'symgrad' has no attribute {name!r}")
