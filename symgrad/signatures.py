"""PyTorch's parameter names for symgrad's public functions and Variable methods: one table.

Each entry is the signature PyTorch documents (`torch.add(input, other, *, alpha=1, out=None)`),
keeping only the parameters symgrad has. `install` puts, in front of every public function and
method the table names, a thin adapter with that signature: positional arguments go through
as they are (the implementations take them in PyTorch's order, under their own names), keyword
arguments are renamed to the implementation's names, and `out=` writes the result into the
given Variable. The implementations (symgrad/functional.py, creation.py, ...) stay as written;
tests/test_api_signatures.py checks the table against torch's own documented signatures and
every installed function against the table."""
from __future__ import annotations

import ast
import functools
import inspect

from symgrad.tensor_math import IN_PLACE

# name: PyTorch's signature for `torch.<name>` (and, without its first parameter, for the
# method `Tensor.<name>` unless METHODS says otherwise). Only parameters symgrad implements.
FUNCTIONS = {
    # elementwise, binary
    "add": "input, other, *, alpha=1, out=None",
    "sub": "input, other, *, alpha=1, out=None",
    "subtract": "input, other, *, alpha=1, out=None",
    "mul": "input, other, *, out=None",
    "multiply": "input, other, *, out=None",
    "div": "input, other, *, rounding_mode=None, out=None",
    "divide": "input, other, *, rounding_mode=None, out=None",
    "true_divide": "input, other, *, out=None",
    "pow": "input, exponent, *, out=None",
    "remainder": "input, other, *, out=None",
    "fmod": "input, other, *, out=None",
    "floor_divide": "input, other, *, out=None",
    "maximum": "input, other, *, out=None",
    "minimum": "input, other, *, out=None",
    "lt": "input, other, *, out=None",
    "le": "input, other, *, out=None",
    "gt": "input, other, *, out=None",
    "ge": "input, other, *, out=None",
    "eq": "input, other, *, out=None",
    "ne": "input, other, *, out=None",
    "where": "condition, input, other, *, out=None",
    "clamp": "input, min=None, max=None, *, out=None",
    "clip": "input, min=None, max=None, *, out=None",
    # elementwise, unary
    "neg": "input, *, out=None",
    "exp": "input, *, out=None",
    "log": "input, *, out=None",
    "sqrt": "input, *, out=None",
    "abs": "input, *, out=None",
    "sign": "input, *, out=None",
    "floor": "input, *, out=None",
    "ceil": "input, *, out=None",
    "sin": "input, *, out=None",
    "cos": "input, *, out=None",
    "tanh": "input, *, out=None",
    "erf": "input, *, out=None",
    "sigmoid": "input, *, out=None",
    "relu": "input",
    "square": "input, *, out=None",
    # comparisons of whole Variables
    "allclose": "input, other, rtol=1e-05, atol=1e-08, equal_nan=False",
    "isclose": "input, other, rtol=1e-05, atol=1e-08, equal_nan=False",
    "equal": "input, other",
    # reductions
    "sum": "input, dim=None, keepdim=False, *, dtype=None",
    "mean": "input, dim=None, keepdim=False, *, dtype=None, out=None",
    "max": "input, dim=None, keepdim=False",
    "min": "input, dim=None, keepdim=False",
    "amax": "input, dim=None, keepdim=False, *, out=None",
    "amin": "input, dim=None, keepdim=False, *, out=None",
    "argmax": "input, dim=None, keepdim=False",
    "argmin": "input, dim=None, keepdim=False",
    "norm": "input, p='fro', dim=None, keepdim=False",
    "logsumexp": "input, dim=None, keepdim=False, *, out=None",
    "softmax": "input, dim=-1, *, dtype=None",
    "log_softmax": "input, dim=-1, *, dtype=None",
    # linear algebra
    "matmul": "input, other, *, out=None",
    "mm": "input, mat2, *, out=None",
    "bmm": "input, mat2, *, out=None",
    "dot": "input, tensor, *, out=None",
    "mv": "input, vec, *, out=None",
    "t": "input",
    "transpose": "input, dim0, dim1",
    "permute": "input, dims",
    # shape
    "reshape": "input, shape",
    "squeeze": "input, dim=None",
    "unsqueeze": "input, dim",
    "flatten": "input, start_dim=0, end_dim=-1",
    "broadcast_to": "input, size",
    "cat": "tensors, dim=0, *, out=None",
    "concat": "tensors, dim=0, *, out=None",
    "stack": "tensors, dim=0, *, out=None",
    # indexing (torch's names, for whichever of these symgrad has)
    "index_select": "input, dim, index, *, out=None",
    "gather": "input, dim, index, *, sparse_grad=False, out=None",
    "masked_fill": "input, mask, value",
    "index_add": "input, dim, index, source, *, alpha=1, out=None",
    "index_put": "input, indices, values, accumulate=False",
    "masked_select": "input, mask, *, out=None",
    "nonzero": "input, *, out=None, as_tuple=False",
    "scatter": "input, dim, index, src",
    "scatter_add": "input, dim, index, src",
    "take_along_dim": "input, indices, dim=None, *, out=None",
    # made of other operations (symgrad/tensor_math.py)
    "var": "input, dim=None, *, correction=1, keepdim=False, out=None",
    "std": "input, dim=None, *, correction=1, keepdim=False, out=None",
    "reciprocal": "input, *, out=None",
    "rsqrt": "input, *, out=None",
    "unique": "input, sorted=True, return_inverse=False, return_counts=False, dim=None",
    "var_mean": "input, dim=None, *, correction=1, keepdim=False",
    "std_mean": "input, dim=None, *, correction=1, keepdim=False",
    "all": "input, dim=None, keepdim=False",
    "outer": "input, vec2, *, out=None",
    "any": "input, dim=None, keepdim=False",
    # questions about a Variable, and printing
    "numel": "input",
    "is_floating_point": "input",
    "set_printoptions": "precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, "
                        "sci_mode=None",
    # creation
    "tensor": "data, *, dtype=None, device=None, requires_grad=False, pin_memory=False",
    "as_tensor": "data, dtype=None, device=None",
    "from_numpy": "ndarray",
    "from_dlpack": "ext_tensor",
    "zeros": "*size, out=None, dtype=None, layout=None, device=None, requires_grad=False",
    "ones": "*size, out=None, dtype=None, layout=None, device=None, requires_grad=False",
    "empty": "*size, out=None, dtype=None, layout=None, device=None, requires_grad=False, "
             "pin_memory=False, memory_format=None",
    "full": "size, fill_value, *, out=None, dtype=None, layout=None, device=None, requires_grad=False",
    "rand": "*size, generator=None, out=None, dtype=None, layout=None, device=None, "
            "requires_grad=False, pin_memory=False",
    "randn": "*size, generator=None, out=None, dtype=None, layout=None, device=None, "
             "requires_grad=False, pin_memory=False",
    "randint": "low=0, high=None, size=None, *, generator=None, out=None, dtype=None, layout=None, "
               "device=None, requires_grad=False",
    "randperm": "n, *, generator=None, out=None, dtype=None, layout=None, device=None, requires_grad=False, "
                "pin_memory=False",
    "normal": "mean, std, size=None, *, generator=None, out=None",
    "bernoulli": "input, p=None, *, generator=None, out=None",
    "arange": "start=0, end=None, step=1, *, out=None, dtype=None, layout=None, device=None, "
              "requires_grad=False",
    "linspace": "start, end, steps, *, out=None, dtype=None, layout=None, device=None, requires_grad=False",
    "eye": "n, m=None, *, out=None, dtype=None, layout=None, device=None, requires_grad=False",
    "zeros_like": "input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None",
    "ones_like": "input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None",
    "empty_like": "input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None",
    "rand_like": "input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None",
    "randn_like": "input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None",
    "full_like": "input, fill_value, *, dtype=None, layout=None, device=None, requires_grad=False, "
                 "memory_format=None",
}

# Methods whose PyTorch signature is not the function's without `input` (or that have no
# function in torch's namespace).
METHODS = {
    "reshape": "*shape",
    "view": "*shape",
    "permute": "*dims",
    "expand": "*sizes",
    "broadcast_to": "size",
    "clamp_min": "min",
    "clamp_max": "max",
    "where": "condition, other",
    "view_as": "other",
    "reshape_as": "other",
    "expand_as": "other",
    "type": "dtype=None",
    "size": "dim=None",
}

# Functions of symgrad's namespace with a PyTorch name that take no table entry, and why.
NOT_IN_TABLE = {
    "compile": "symgrad's compiler, not torch.compile",
    "jit": "symgrad's tracing compiler (as jax.jit), not the torch.jit module",
    "manual_seed": "(seed): the same name as PyTorch's already",
    "seed": "no parameters",
    "initial_seed": "no parameters",
    "get_rng_state": "no parameters",
    "set_rng_state": "(new_state): the same name as PyTorch's already",
    "is_grad_enabled": "no parameters",
    "is_inference_mode_enabled": "no parameters",
    "get_num_threads": "no parameters",
    "set_num_threads": "(int): positional only, as PyTorch's",
    "set_default_device": "(device): the same name as PyTorch's already",
    "set_default_dtype": "(d): the same name as PyTorch's already",
    "get_default_dtype": "no parameters",
    "get_default_device": "no parameters",
    "get_printoptions": "no parameters",
    "is_tensor": "(obj, /): positional only, as PyTorch's",
 **{name: "torch's in-place function: (input, *args) as the method x." + name for name in IN_PLACE},
    "set_grad_enabled": "(mode): the same name as PyTorch's already",
    "FloatTensor": "legacy constructor: (*sizes) or (data)",
    "DoubleTensor": "legacy constructor: (*sizes) or (data)",
    "LongTensor": "legacy constructor: (*sizes) or (data)",
    "IntTensor": "legacy constructor: (*sizes) or (data)",
    "BoolTensor": "legacy constructor: (*sizes) or (data)",
    "binary_cross_entropy_with_logits": "a loss (symgrad/nn/functional.py): (input, target, weight=None, "
                                        "reduction=, pos_weight=None) as torch.nn.functional's, without "
                                        "the deprecated size_average and reduce",
}


# Keyword names PyTorch accepts in place of its own, as numpy spells them.
NUMPY_ALIASES = {"axis": "dim", "keepdims": "keepdim"}


class Parameter:
    __slots__ = ("name", "kind", "default")

    def __init__(self, name, kind, default):
        self.name, self.kind, self.default = name, kind, default


def split_parameters(text: str) -> list[str]:
    """`text` split at its top-level commas (types such as `Optional[Union[int, List[int]]]`
    hold commas of their own)."""
    parts, depth, start = [], 0, 0
    for k, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:k])
            start = k + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse(text: str) -> list[Parameter]:
    """A signature's parameter list, as PyTorch's documentation writes it, as Parameters.
    Annotations are dropped; defaults that are not Python literals (`torch.strided`) are kept as text."""
    out, keyword_only = [], False
    for part in split_parameters(text.replace("\\*", "*")):
        if part == "*":
            keyword_only = True
            continue
        name, _, default = part.partition("=")
        name = name.split(":")[0].strip()
        if name.startswith("*"):
            out.append(Parameter(name[1:], inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.empty))
            keyword_only = True
            continue
        if default:
            try:
                value = ast.literal_eval(default.strip())
            except (ValueError, SyntaxError):
                value = default.strip()
        else:
            value = inspect.Parameter.empty
        kind = inspect.Parameter.KEYWORD_ONLY if keyword_only else inspect.Parameter.POSITIONAL_OR_KEYWORD
        out.append(Parameter(name, kind, value))
    return out


def signature_of(text: str) -> inspect.Signature:
    return inspect.Signature([inspect.Parameter(p.name, p.kind, default=p.default) for p in parse(text)])


def method_spec(name: str):
    """The PyTorch signature of the method `Tensor.<name>`, or None when the table has none."""
    if name in METHODS:
        return METHODS[name]
    if name.endswith("_") and not name.endswith("__") and name not in FUNCTIONS:
        # an in-place method (`x.add_(other, *, alpha=1)`) takes the out-of-place one's parameters
        return method_spec(name[:-1])
    spec = FUNCTIONS.get(name)
    if spec is None:
        return None
    params = split_parameters(spec)
    if not params or params[0] != "input":
        return None
    # methods take no out= (PyTorch's Tensor.add(other, *, alpha=1)); a trailing `*` goes too
    params = [p for p in params[1:] if not p.startswith("out=")]
    if params and params[-1] == "*":
        params.pop()
    return ", ".join(params)


def _impl_parameters(fn):
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None


def adapt(fn, spec: str, public_name: str, method: bool = False):
    """`fn` behind PyTorch's signature `spec` (see the module's docstring). `fn` itself when its
    own parameters already carry those names and it needs no `out=`."""
    impl = _impl_parameters(fn)
    if impl is None:
        return fn
    wanted = parse(spec)
    if method:              # the implementation's first parameter is the Variable itself
        impl = impl[1:]
    impl_positional = [p for p in impl if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    impl_varargs = next((p for p in impl if p.kind is p.VAR_POSITIONAL), None)
    impl_names = {p.name for p in impl}
    has_var_keywords = any(p.kind is p.VAR_KEYWORD for p in impl)
    rename, positional_names = {}, []
    for k, p in enumerate(w for w in wanted if w.kind is not inspect.Parameter.KEYWORD_ONLY):
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            if impl_varargs is None:
                raise TypeError(f"signatures: {public_name} takes *{p.name} in PyTorch, but its "
                                f"implementation {fn.__qualname__} has no *args")
            if p.name in impl_names:       # zeros(*shape, size=None): size= is a keyword there
                rename[p.name] = p.name
            continue
        if k < len(impl_positional):
            rename[p.name] = impl_positional[k].name
            positional_names.append(p.name)
        elif impl_varargs is not None:
            positional_names.append(p.name)      # a sequence for the implementation's *args
        else:
            raise TypeError(f"signatures: {public_name}'s parameter {p.name!r} has no counterpart in "
                            f"{fn.__qualname__}{inspect.signature(fn)}")
    takes_out = False
    for p in wanted:
        if p.kind not in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            continue
        if p.name in rename or p.name in positional_names:
            continue
        if p.name in impl_names or has_var_keywords:
            rename[p.name] = p.name
        elif p.name == "out":
            takes_out = True
        else:
            raise TypeError(f"signatures: {public_name}'s parameter {p.name!r} has no counterpart in "
                            f"{fn.__qualname__}{inspect.signature(fn)}")
    by_position = [n for n in positional_names if n not in rename]     # bound to *args
    # numpy's names, which PyTorch also takes for these: x.sum(axis=0, keepdims=True)
    aliases = {alias: name for alias, name in NUMPY_ALIASES.items()
               if name in rename or name in positional_names}
    if not takes_out and not by_position and all(k == v for k, v in rename.items()):
        return _with_aliases(fn, public_name, aliases) if aliases else fn
    sig = signature_of(spec)
    if method:
        sig = sig.replace(parameters=[inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
                          + list(sig.parameters.values()))
    offset = 1 if method else 0
    slots = {n: k + offset for k, n in enumerate(positional_names)}

    @functools.wraps(fn)
    def adapter(*args, **kwargs):
        out = None
        if kwargs:
            if takes_out and "out" in kwargs:
                out = kwargs.pop("out")
            _take_aliases(public_name, aliases, kwargs)
            for key in kwargs:
                if key not in rename and key not in slots:
                    raise TypeError(f"{public_name}() got an unexpected keyword argument {key!r}; "
                                    f"PyTorch's signature is {public_name}{sig}")
            if slots:
                args, kwargs = _to_positions(public_name, sig, slots, args, kwargs)
            kwargs = {rename.get(k, k): v for k, v in kwargs.items()}
            for key in by_position:
                if key in kwargs:
                    raise TypeError(f"{public_name}() missing an argument before {key!r}; PyTorch's "
                                    f"signature is {public_name}{sig}")
        result = fn(*args, **kwargs)
        if out is not None:
            return write_out(public_name, out, result)
        return result

    adapter.__signature__ = _annotated(sig, fn, rename)
    adapter.__wrapped__ = fn
    return adapter


def _annotated(sig: inspect.Signature, fn, rename: dict) -> inspect.Signature:
    """PyTorch's signature carrying the implementation's type hints: each parameter takes the
    annotation of the one it is renamed to, `out` is an optional Variable, and the return is
    the implementation's."""
    try:
        impl = inspect.signature(fn)
    except (TypeError, ValueError):
        return sig
    params = []
    for p in sig.parameters.values():
        target = impl.parameters.get(rename.get(p.name, p.name))
        if p.name == "out" and target is None:
            params.append(p.replace(annotation="Variable | None"))
        elif target is not None and target.annotation is not inspect.Parameter.empty:
            params.append(p.replace(annotation=target.annotation))
        else:
            params.append(p)
    return sig.replace(parameters=params, return_annotation=impl.return_annotation)


def _to_positions(public_name, sig, slots, args, kwargs):
    """Keyword arguments for PyTorch's positional parameters (`input=`, `dim=`) moved to their
    positions, as far as they follow on from the positional ones given (the implementations
    are written to be called positionally); the rest stay keywords."""
    args = list(args)
    for name, position in sorted(slots.items(), key=lambda item: item[1]):
        if name in kwargs:
            if position < len(args):
                raise TypeError(f"{public_name}() got multiple values for argument {name!r}")
            if position == len(args):
                args.append(kwargs.pop(name))
    return tuple(args), kwargs


def write_out(name: str, out, result, requires_grad: bool = False):
    """`out=`: the result written into the Variable `out` (which keeps its dtype, takes the
    result's shape if it is a plain leaf, and stands for the value afterwards); returns `out`.
    As in PyTorch, results that need gradients can't be written into `out`."""
    from symgrad.variable import Variable, is_grad_enabled
    if not isinstance(out, Variable):
        raise TypeError(f"{name}(): argument 'out' must be a Variable, got {type(out).__name__}")
    if not isinstance(result, Variable):
        raise TypeError(f"{name}(): out= is not supported here (the result is a {type(result).__name__})")
    if is_grad_enabled() and (result.requires_grad or out.requires_grad or requires_grad):
        raise RuntimeError(f"{name}(): functions with out=... arguments don't support automatic "
                           f"differentiation, but one of the arguments requires grad")
    if result.shape != out.shape and out.op is None and out.is_concrete:
        from symgrad import dtypes
        if dtypes.category(result.dtype) > dtypes.category(out.dtype):
            raise RuntimeError(f"{name}(): result type {result.dtype} can't be cast to the desired "
                               f"output type {out.dtype}")
        out.data = result.value().astype(out.dtype)
        return out
    return out.copy_(result)


def _take_aliases(public_name: str, aliases: dict, kwargs: dict) -> None:
    for alias in aliases.keys() & kwargs.keys():
        if aliases[alias] in kwargs:
            raise TypeError(f"{public_name}() got both {alias!r} and {aliases[alias]!r}")
        kwargs[aliases[alias]] = kwargs.pop(alias)


def _with_aliases(fn, public_name: str, aliases: dict):
    """`fn`, which already has PyTorch's names, also taking numpy's (`axis=` for `dim=`)."""
    @functools.wraps(fn)
    def adapter(*args, **kwargs):
        if kwargs:
            _take_aliases(public_name, aliases, kwargs)
        return fn(*args, **kwargs)
    return adapter


def install(namespace: dict, variable_class) -> None:
    """Put the adapters in front of the table's functions in `namespace` (symgrad's) and of
    the methods of `variable_class`."""
    for name, spec in FUNCTIONS.items():
        fn = namespace.get(name)
        if callable(fn) and not isinstance(fn, type):
            namespace[name] = adapt(fn, spec, name)
    for name in dir(variable_class):
        if name.startswith("_"):
            continue
        spec = method_spec(name)
        attr = inspect.getattr_static(variable_class, name, None)
        if spec is None or not callable(attr) or isinstance(attr, (property, staticmethod, classmethod)):
            continue
        setattr(variable_class, name, adapt(attr, spec, name, method=True))
