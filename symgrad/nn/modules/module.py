"""`nn.Module`: parameters, buffers and submodules registered by attribute assignment, walked
in registration order with PyTorch's dotted names, and saved and loaded as PyTorch's
state_dict is."""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Callable, Iterator

import numpy as np

from symgrad import dtypes
from symgrad.autograd.grad_mode import no_grad
from symgrad.nn.parameter import Parameter, StoredVariable, typename
from symgrad.variable import Variable


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What `load_state_dict` returns: the keys missing from the state_dict and those it had
    that the model does not."""

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def _addindent(text: str, spaces: int) -> str:
    """Indent every line of `text` but the first (how nested modules print)."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


def _check_name(kind: str, name, module: "Module", store: dict) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string. Got {typename(name)}")
    if "." in name:
        raise KeyError(f"{kind} name can't contain \".\"" + (f", got: {name}" if kind == "module" else ""))
    if name == "":
        raise KeyError(f"{kind} name can't be empty string \"\"")
    if hasattr(module, name) and name not in store:
        raise KeyError(f"attribute '{name}' already exists")


def _as_array(key: str, value) -> np.ndarray:
    """A state_dict value: a Variable, a numpy array or anything with `__array__` (a torch
    tensor); anything else is refused naming the key."""
    if isinstance(value, (Variable, np.ndarray, np.generic)) or hasattr(value, "__array__") or \
            hasattr(value, "__dlpack__"):
        from symgrad.dlpack import to_array       # (a torch tensor that requires grad: detached)
        arr = np.asarray(to_array(value, f'the parameter named "{key}"'))
        if arr.dtype.kind not in "fiub":
            raise TypeError(f'While copying the parameter named "{key}", expected a Variable or a '
                            f"numeric array from checkpoint but received an array of dtype {arr.dtype}")
        return arr
    raise TypeError(f'While copying the parameter named "{key}", expected a Variable or numpy array '
                    f"from checkpoint but received {type(value)}")


class Module:
    """The base class of layers and models, as PyTorch's `torch.nn.Module`: assigning a
    Parameter, a Module or a registered buffer as an attribute registers it."""

    training: bool

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            got = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments: {got}")
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_forward_hooks", {})
        object.__setattr__(self, "_forward_pre_hooks", {})

    # --- calling ----------------------------------------------------------------------------

    def forward(self, *args, **kwargs):
        """What a call computes; subclasses define it."""
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" '
                                  f'function')

    def __call__(self, *args, **kwargs):
        for hook in list(self.__dict__.get("_forward_pre_hooks", {}).values()):
            changed = hook(self, args)
            if changed is not None:
                args = changed if isinstance(changed, tuple) else (changed,)
        out = self.forward(*args, **kwargs)
        for hook in list(self.__dict__.get("_forward_hooks", {}).values()):
            changed = hook(self, args, out)
            if changed is not None:
                out = changed
        return out

    def register_forward_hook(self, hook: Callable):
        """`hook(module, args, output)` after each call; a result other than None replaces the
        output. Returns a handle whose `remove()` takes the hook away."""
        return _Handle(self._forward_hooks, hook)

    def register_forward_pre_hook(self, hook: Callable):
        """`hook(module, args)` before each call; a result other than None replaces the args."""
        return _Handle(self._forward_pre_hooks, hook)

    # --- registration -----------------------------------------------------------------------

    def register_parameter(self, name: str, param) -> None:
        """Add a Parameter (or None) under `name`, as assigning it as an attribute does."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        _check_name("parameter", name, self, self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{typename(param)}' object to parameter '{name}' "
                            f"(torch.nn.Parameter or None required)")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Add a Variable that is state but not a parameter; `persistent=False` leaves it out of
        state_dict."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        _check_name("buffer", name, self, self._buffers)
        if tensor is not None and not isinstance(tensor, Variable):
            raise TypeError(f"cannot assign '{typename(tensor)}' object to buffer '{name}' "
                            f"(torch Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module) -> None:
        """Add a submodule (or None) under `name`."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{typename(module)} is not a Module subclass")
        if "_modules" not in self.__dict__:
            raise AttributeError("cannot assign module before Module.__init__() call")
        _check_name("module", name, self, self._modules)
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        params, modules, buffers = d.get("_parameters"), d.get("_modules"), d.get("_buffers")

        def forget(*stores):
            for store in stores:
                if name in store:
                    del store[name]
            d.get("_non_persistent_buffers_set", set()).discard(name)

        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            forget(d, buffers, modules)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{typename(value)}' as parameter '{name}' "
                                f"(torch.nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            if modules is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            forget(d, params, buffers)
            modules[name] = value
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(f"cannot assign '{typename(value)}' as child module '{name}' "
                                f"(torch.nn.Module or None expected)")
            modules[name] = None
        elif buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Variable):
                raise TypeError(f"cannot assign '{typename(value)}' as buffer '{name}' "
                                f"(torch.Tensor or None expected)")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(store, {}):
                del self.__dict__[store][name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        keys = list(super().__dir__())
        for store in ("_parameters", "_buffers", "_modules"):
            keys += list(self.__dict__.get(store, {}))
        return sorted(set(k for k in keys if not k[:1].isdigit()))

    # --- walking ----------------------------------------------------------------------------

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """(dotted name, module) for this module and every one below it, depth first, each once."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            yield from module.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        """This module and every one below it."""
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        """(name, module) of the direct submodules."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator["Module"]:
        """The direct submodules."""
        for _, module in self.named_children():
            yield module

    def _named_members(self, store: str, prefix: str, recurse: bool, remove_duplicate: bool):
        seen = set()
        walk = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse \
            else [(prefix, self)]
        for module_prefix, module in walk:
            for name, v in getattr(module, store).items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield module_prefix + ("." if module_prefix else "") + name, v

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """(dotted name, Parameter) in registration order, each Parameter once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """The Parameters, in the order of named_parameters()."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """(dotted name, buffer) in registration order."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Variable]:
        """The buffers, in the order of named_buffers()."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> "Module":
        """The submodule at the dotted path `target` ("" is this module)."""
        module = self
        for item in target.split(".") if target else []:
            if item not in module._modules or module._modules[item] is None:
                raise AttributeError(f"{module._get_name()} has no attribute `{item}`")
            module = module._modules[item]
        return module

    def get_parameter(self, target: str) -> Parameter:
        """The Parameter at the dotted path `target`."""
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        if name not in module._parameters:
            raise AttributeError(f"{module._get_name()} has no parameter `{name}`")
        return module._parameters[name]

    # --- modes and gradients ------------------------------------------------------------------

    def train(self, mode: bool = True) -> "Module":
        """Set training mode (Dropout drops) on this module and all below it."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> "Module":
        """train(False)."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Set requires_grad on every Parameter."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the Parameters' gradients (None), or zero them in place."""
        from symgrad.optim.optimizer import reset_grad
        for p in self.parameters():
            reset_grad(p, set_to_none)

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call `fn` on every submodule (children first), then on this module."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # --- dtypes --------------------------------------------------------------------------------

    def _cast_floats(self, dtype) -> "Module":
        """Every floating point parameter, gradient and buffer becomes `dtype`, in place: the
        Parameter objects stay the same (an optimizer made before holds them still)."""
        dt = dtypes.as_dtype(dtype)
        for module in self.modules():
            for p in module._parameters.values():
                if p is None or not dtypes.is_float(p.dtype) or p.dtype == dt:
                    continue
                p.data = p.value().astype(dt)
                if p.grad is not None:
                    p.grad = Variable(p.grad.value().astype(dt))
            for name, b in module._buffers.items():       # buffers are replaced, as in PyTorch
                if b is not None and dtypes.is_float(b.dtype) and b.dtype != dt:
                    module._buffers[name] = Variable(b.value().astype(dt))
        return self

    def to(self, *args, **kwargs) -> "Module":
        """`to(dtype)`, `to(device)`, `to(device, dtype)` or `to(tensor)`: floating point
        parameters and buffers take the dtype; the device must be the CPU (eager values live
        there)."""
        from symgrad.devices import device as as_device
        dtype = kwargs.pop("dtype", None)
        dev = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Variable):
                dtype = a.dtype
            elif isinstance(a, bool):
                continue
            elif isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda", "meta", "mps"):
                dev = a
            elif type(a).__name__ == "device":
                dev = a
            else:
                dtype = a
        if dev is not None and as_device(dev).type != "cpu":
            raise RuntimeError(f"Module.to({dev!r}): symgrad's eager values live on the CPU; compiled "
                               f"graphs run on a GPU through sg.compile(..., backend='cuda')")
        if dtype is None:
            return self
        dt = dtypes.as_dtype(dtype)
        if not dtypes.is_float(dt):
            raise TypeError(f"nn.Module.to only accepts floating point or complex dtypes, but got desired "
                            f"dtype={dt}")
        return self._cast_floats(dt)

    def double(self) -> "Module":
        """Floating point parameters and buffers become float64."""
        return self._cast_floats("float64")

    def float(self) -> "Module":
        """Floating point parameters and buffers become float32."""
        return self._cast_floats("float32")

    def cpu(self) -> "Module":
        """This module: its values live on the CPU already."""
        return self

    def cuda(self, device=None) -> "Module":
        raise RuntimeError("Module.cuda(): symgrad's eager values live on the CPU; compiled graphs run on a "
                           "GPU through sg.compile(..., backend='cuda')")

    def type(self, dst_type) -> "Module":
        """to(dst_type)."""
        return self.to(dst_type)

    # --- state_dict ------------------------------------------------------------------------------

    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """Parameters and persistent buffers by their dotted names, in registration order; the
        values share storage with the model's (detached unless `keep_vars`)."""
        out = OrderedDict() if destination is None else destination
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=out, prefix=prefix + name + ".", keep_vars=keep_vars)
        return out

    def _local_state(self, prefix: str) -> list:
        """(key, module, name, kind) of every parameter and persistent buffer, as state_dict orders them."""
        out = []
        for module_prefix, module in self.named_modules(prefix=prefix.rstrip("."), remove_duplicate=False):
            dot = module_prefix + "." if module_prefix else ""
            for name, p in module._parameters.items():
                if p is not None:
                    out.append((dot + name, module, name, "_parameters"))
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent_buffers_set:
                    out.append((dot + name, module, name, "_buffers"))
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False) -> _IncompatibleKeys:
        """Copy values (Variables or numpy arrays, or anything with `__array__`) into the
        parameters and buffers, in place and cast to their dtypes. With `strict`, missing and
        unexpected keys are errors, as in PyTorch; a shape that differs always is."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        local = self._local_state("")
        expected = {key for key, *_ in local}
        missing = [key for key, *_ in local if key not in state_dict]
        unexpected = [key for key in state_dict.keys() if key not in expected]
        errors = []
        for key, module, name, kind in local:
            if key not in state_dict:
                continue
            target = getattr(module, kind)[name]
            arr = _as_array(key, state_dict[key])
            if target.ndim == 0 and arr.shape == (1,):
                arr = arr.reshape(())
            if arr.shape != tuple(target.shape):
                errors.append(f"size mismatch for {key}: copying a param with shape {_size(arr.shape)} "
                              f"from checkpoint, the shape in current model is {_size(target.shape)}.")
                continue
            if assign:
                new = Variable(np.array(arr))
                if kind == "_parameters":
                    new = Parameter(new, target.requires_grad)
                getattr(module, kind)[name] = new
            else:
                with no_grad():
                    target.copy_(Variable(np.array(arr)))
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in unexpected)))
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in missing)))
        if errors:
            raise RuntimeError("Error(s) in loading state_dict for {}:\n\t{}".format(
                type(self).__name__, "\n\t".join(errors)))
        return _IncompatibleKeys(missing, unexpected)

    # --- pickling ----------------------------------------------------------------------------------

    def __getstate__(self):
        """Buffers and Variables held as plain attributes are saved by value (a graph node
        holds weak references to its users, which do not pickle); Parameters save themselves."""
        state = self.__dict__.copy()
        state["_buffers"] = {k: None if v is None else StoredVariable(v) for k, v in self._buffers.items()}
        for k, v in state.items():
            if isinstance(v, Variable) and not isinstance(v, Parameter):
                state[k] = StoredVariable(v)
        return state

    def __setstate__(self, state):
        state["_buffers"] = {k: None if v is None else v.restore() for k, v in state["_buffers"].items()}
        for k, v in state.items():
            if isinstance(v, StoredVariable):
                state[k] = v.restore()
        self.__dict__.update(state)

    # --- printing --------------------------------------------------------------------------------

    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        """The text inside this module's parentheses when printed; layers define it."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({key}): " + _addindent(repr(module), 2) for key, module in self._modules.items()]
        lines = extra_lines + child_lines
        text = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                text += extra_lines[0]
            else:
                text += "\n  " + "\n  ".join(lines) + "\n"
        return text + ")"


def _size(shape) -> str:
    return f"torch.Size([{', '.join(map(str, shape))}])"


class _Handle:
    """A registered hook; `remove()` takes it away."""

    _next = 0

    def __init__(self, store: dict, hook: Callable):
        _Handle._next += 1
        self.id, self._store = _Handle._next, store
        store[self.id] = hook

    def remove(self) -> None:
        self._store.pop(self.id, None)
