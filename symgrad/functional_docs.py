"""The docstrings of symgrad/functional.py's public functions, kept apart from the code as
PyTorch keeps its own (torch/_torch_docs.py), so that the module stays short. Each says what
the function computes, its arguments by their PyTorch names (the ones `sg.<name>` takes, see
symgrad/signatures.py) and the PyTorch function it matches. `attach` sets them."""
from __future__ import annotations

DOCS = {
    "cast": """Returns the Variable `x` converted to `dtype` (a symgrad/numpy dtype or its name).

    Casting to an integer or bool dtype carries no gradient. PyTorch: `x.to(dtype)`.""",
    "add": """Returns input + alpha * other, elementwise, broadcasting, with PyTorch's type promotion.

    `input` and `other` are Variables or numbers; `alpha` scales `other`. PyTorch: `torch.add`.""",
    "sub": """Returns input - alpha * other, elementwise, broadcasting, with PyTorch's type promotion.

    `input` and `other` are Variables or numbers; `alpha` scales `other`. PyTorch: `torch.sub`.""",
    "pow": """Returns input ** exponent, elementwise, broadcasting.

    Either of `input` and `exponent` may be a number; both may be Variables (the gradient
    flows to both). PyTorch: `torch.pow`.""",
    "remainder": """Returns input % other with the sign of `other`, as Python's % (`torch.remainder`).

    `input` and `other` are Variables or numbers, broadcasting.""",
    "fmod": """Returns C's fmod(input, other): the remainder with the sign of `input` (`torch.fmod`).

    `input` and `other` are Variables or numbers, broadcasting.""",
    "floor_divide": """Returns input // other rounded toward minus infinity (`torch.floor_divide`).

    `input` and `other` are Variables or numbers, broadcasting; the result carries no gradient.""",
    "where": """Returns `input` where `condition` is true and `other` elsewhere, broadcasting.

    `condition` is a bool Variable; the gradient flows to `input` and `other` only.
    PyTorch: `torch.where(condition, input, other)`.""",
    "clamp": """Returns `input` limited to [min, max], elementwise (`torch.clamp`, `torch.clip`).

    `min` and `max` are numbers, Variables (broadcasting) or None for no bound on that side.""",
    "stop_gradient": """Returns `input`'s value with no gradient flowing back through it.

    JAX: `jax.lax.stop_gradient`; PyTorch: `input.detach()` inside a graph.""",
    "sum": """Returns the sum of `input`'s elements: all of them, or over `dim` (an int or a tuple).

    `keepdim` keeps the reduced dimensions with size 1; `dtype` is the accumulation and result
    dtype (integers and bools sum to int64 by default, as PyTorch's). PyTorch: `torch.sum`.""",
    "mean": """Returns the mean of `input`'s elements: all of them, or over `dim` (an int or a tuple).

    `keepdim` keeps the reduced dimensions with size 1; `dtype` casts `input` first.
    PyTorch: `torch.mean`.""",
    "max": """Returns the largest element of `input`, or with `dim` the pair (values, indices).

    With `dim` (an int) the result is a named pair as PyTorch's `torch.return_types.max`;
    `keepdim` keeps that dimension with size 1. Two Variables give `maximum`. PyTorch: `torch.max`.""",
    "min": """Returns the smallest element of `input`, or with `dim` the pair (values, indices).

    With `dim` (an int) the result is a named pair as PyTorch's `torch.return_types.min`;
    `keepdim` keeps that dimension with size 1. Two Variables give `minimum`. PyTorch: `torch.min`.""",
    "amax": """Returns the largest elements of `input` over `dim` (an int, a tuple or None for all).

    `keepdim` keeps the reduced dimensions with size 1; the gradient is shared evenly between
    equal maxima. PyTorch: `torch.amax`.""",
    "amin": """Returns the smallest elements of `input` over `dim` (an int, a tuple or None for all).

    `keepdim` keeps the reduced dimensions with size 1; the gradient is shared evenly between
    equal minima. PyTorch: `torch.amin`.""",
    "argmax": """Returns the index (int64) of the largest element of `input`, flat or along `dim`.

    `keepdim` keeps that dimension with size 1; the first index wins a tie. PyTorch: `torch.argmax`.""",
    "argmin": """Returns the index (int64) of the smallest element of `input`, flat or along `dim`.

    `keepdim` keeps that dimension with size 1; the first index wins a tie. PyTorch: `torch.argmin`.""",
    "norm": """Returns the vector p-norm of `input`: over all elements, or over `dim`.

    `p` is a number, inf, -inf or 'fro' (2); `keepdim` keeps the reduced dimensions.
    PyTorch: `torch.norm` / `torch.linalg.vector_norm`.""",
    "logsumexp": """Returns log(sum(exp(input))) over `dim`, computed stably (the maximum is taken out first).

    `dim` is an int or a tuple; `keepdim` keeps the reduced dimensions. PyTorch: `torch.logsumexp`.""",
    "softmax": """Returns exp(input) / sum(exp(input)) along `dim` (default the last), computed stably.

    `dtype` casts `input` first. PyTorch: `torch.softmax`.""",
    "log_softmax": """Returns input - logsumexp(input) along `dim` (default the last), computed stably.

    `dtype` casts `input` first. PyTorch: `torch.log_softmax`.""",
    "matmul": """Returns the matrix product of `input` and `other`, as PyTorch's `torch.matmul`.

    1-d by 1-d is a dot product, 2-d by 2-d a matrix product, a 1-d argument is a vector
    (its added dimension removed after), and leading dimensions of N-d arguments broadcast
    as a batch. Also `input @ other`.""",
    "mm": """Returns the matrix product of the 2-d Variables `input` (n, m) and `mat2` (m, p).

    PyTorch: `torch.mm`.""",
    "bmm": """Returns the batched matrix product of `input` (b, n, m) and `mat2` (b, m, p).

    PyTorch: `torch.bmm`.""",
    "dot": """Returns the inner product of the 1-d Variables `input` and `tensor` (a 0-d Variable).

    PyTorch: `torch.dot`.""",
    "mv": """Returns the product of the matrix `input` (n, m) and the vector `vec` (m,).

    PyTorch: `torch.mv`.""",
    "permute": """Returns `input` with its dimensions reordered: dimension k of the result is `dims[k]`.

    `dims` is a tuple or the ints themselves. PyTorch: `torch.permute`.""",
    "transpose": """Returns `input` with its dimensions `dim0` and `dim1` swapped.

    PyTorch: `torch.transpose`.""",
    "t": """Returns the transpose of a Variable of at most 2 dimensions (0-d and 1-d as they are).

    `input` is that Variable. PyTorch: `torch.t`.""",
    "reshape": """Returns `input`'s elements in row-major order with the new `shape` (one entry may be -1).

    `shape` is a tuple or the ints themselves. PyTorch: `torch.reshape`, `Tensor.view`.""",
    "squeeze": """Returns `input` without its dimensions of size 1 (all of them, or only `dim`).

    PyTorch: `torch.squeeze`.""",
    "unsqueeze": """Returns `input` with a new dimension of size 1 inserted at `dim`.

    PyTorch: `torch.unsqueeze`.""",
    "flatten": """Returns `input` with the dimensions `start_dim` to `end_dim` merged into one.

    PyTorch: `torch.flatten`.""",
    "broadcast_to": """Returns `input` broadcast to `size`, as numpy's broadcasting rules allow.

    The gradient sums over the broadcast dimensions. PyTorch: `torch.broadcast_to`, `Tensor.expand`.""",
    "cat": """Returns the Variables of `tensors` joined along the existing dimension `dim`.

    All must have the same shape except along `dim`. PyTorch: `torch.cat`, `torch.concat`.""",
    "stack": """Returns the Variables of `tensors` joined along a new dimension `dim`.

    All must have the same shape. PyTorch: `torch.stack`.""",
    "swap_last": """Returns `input` with its last two dimensions swapped (`Tensor.mT`).

    `input` must have at least two dimensions. PyTorch: `Tensor.mT`.""",
}


# The registry's public ops that PyTorch has outside its top-level namespace.
TORCH_NAMES = {"softplus": "torch.nn.functional.softplus", "softsign": "torch.nn.functional.softsign"}


def elementwise_doc(name: str, summary: str, arity: int, float_only: bool) -> str:
    """The docstring of the public function made from the registry entry `name` (whose
    `doc` facet is `summary`): the summary, then its arguments and PyTorch's equivalent."""
    args = "`input` is a Variable or a number" if arity == 1 else \
        "`input` and `other` are Variables or numbers (broadcasting, promoted to one dtype as PyTorch does)"
    ints = " Integer inputs become float32 first." if float_only else ""
    torch_name = TORCH_NAMES.get(name, f"torch.{name}")
    return f"{summary}\n\n{args}; returns a Variable.{ints} PyTorch: `{torch_name}`."


def attach(namespace: dict) -> None:
    """Set the docstring of each function of `namespace` named in DOCS (and of the function it
    wraps, where it is a wrapper)."""
    import inspect
    for name, doc in DOCS.items():
        fn = namespace[name]
        text = inspect.cleandoc(doc)
        fn.__doc__ = text
        inner = getattr(fn, "__wrapped__", None)
        while inner is not None:
            inner.__doc__ = text
            inner = getattr(inner, "__wrapped__", None)
