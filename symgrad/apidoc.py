"""symgrad's public API, walked: every public name with its signature and docstring.

`public_api()` lists what a user can reach (the names of `symgrad`, `symgrad.nn` with its
`functional` and `init`, `symgrad.optim` with `lr_scheduler`, `symgrad.autograd` with its
`functional`, `symgrad.func`, and the public methods of `Variable`, of what `sg.compile`
returns and of what `sg.jit` returns). tests/test_docs.py checks each one's docstring and type
hints; `python -m symgrad.apidoc > docs/api.md` writes the reference page from it."""
from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator

# (section title, module, what it lists): `None` lists the module's `__all__`.
SECTIONS = (
    ("symgrad", "symgrad", None),
    ("symgrad.nn", "symgrad.nn", None),
    ("symgrad.nn.functional", "symgrad.nn.functional", None),
    ("symgrad.nn.init", "symgrad.nn.init", None),
    ("symgrad.optim", "symgrad.optim", None),
    ("symgrad.optim.lr_scheduler", "symgrad.optim.lr_scheduler", None),
    ("symgrad.autograd", "symgrad.autograd", None),
    ("symgrad.autograd.functional", "symgrad.autograd.functional", None),
    ("symgrad.func", "symgrad.func", None),
)


@dataclass(frozen=True)
class Entry:
    """One public name: where it is listed (`symgrad.nn.Linear`, `Variable.sum`), what it is
    (`function`, `class`, `method` or `property`) and the object itself."""
    name: str
    kind: str
    obj: Any


def _module_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in dir(module) if not n.startswith("_")]
    return sorted(names, key=str.lower)


def _is_documentable(obj) -> bool:
    """Functions and classes: not modules, dtypes, numbers or strings."""
    return inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj) or \
        (callable(obj) and hasattr(obj, "__wrapped__"))


def _members(cls, prefix: str) -> Iterator[Entry]:
    """The public methods and properties a symgrad class defines (not those it inherits from
    `object` or from numpy)."""
    for name in sorted(dir(cls), key=str.lower):
        if name.startswith("_"):
            continue
        attr = inspect.getattr_static(cls, name, None)
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is None or not (owner.__module__ or "").startswith("symgrad"):
            continue
        if isinstance(attr, property):
            yield Entry(f"{prefix}.{name}", "property", attr)
        elif isinstance(attr, (staticmethod, classmethod)):
            yield Entry(f"{prefix}.{name}", "method", attr.__func__)
        elif inspect.isfunction(attr) or (callable(attr) and hasattr(attr, "__wrapped__")):
            yield Entry(f"{prefix}.{name}", "method", attr)


def compiled_members() -> list[Entry]:
    """The public names of what `sg.compile` returns: the class's methods, and `forward`,
    `backward` and `value_and_grad`, which are callable objects of their own."""
    compile_module = importlib.import_module("symgrad.compile")    # sg.compile is the function
    cls = compile_module.CompiledFunction
    out = list(_members(cls, "CompiledFunction"))
    out += [Entry("CompiledFunction.forward", "method", compile_module._Forward),
            Entry("CompiledFunction.backward", "method", compile_module._Entry),
            Entry("CompiledFunction.value_and_grad", "method", compile_module._Entry)]
    return sorted(out, key=lambda e: e.name.lower())


def public_api() -> list[Entry]:
    """Every public name, in the order of the reference page."""
    import symgrad
    from symgrad.jit import Jitted
    out = []
    for _, module_name, _ in SECTIONS:
        module = importlib.import_module(module_name)
        for name in _module_names(module):
            obj = getattr(module, name)
            if not _is_documentable(obj):
                continue
            qualified = f"{module_name}.{name}"
            out.append(Entry(qualified, "class" if inspect.isclass(obj) else "function", obj))
    out += list(_members(symgrad.Variable, "Variable"))
    out += compiled_members()
    out += list(_members(Jitted, "Jitted"))
    return out


def signature_text(obj) -> str:
    """`(input, dim=None, keepdim=False)`: the parameters a caller passes, with their defaults
    and without type hints (which `help()` shows); `(...)` where Python can't tell."""
    if isinstance(obj, property):
        obj = obj.fget
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    empty = inspect.Parameter.empty
    plain = [p.replace(annotation=empty) for p in sig.parameters.values() if p.name != "self"]
    return str(sig.replace(parameters=plain, return_annotation=inspect.Signature.empty))


def first_line(obj) -> str:
    """The docstring's first paragraph on one line (its summary)."""
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _fence(text: str) -> str:
    return text.replace("|", "\\|")


def render(entries: list[Entry] | None = None) -> str:
    """The reference page (markdown): for each section, each name with its signature and the
    first paragraph of its docstring."""
    entries = public_api() if entries is None else entries
    lines = ["# symgrad API reference", "",
             "Generated by `python -m symgrad.apidoc > docs/api.md` from the docstrings; "
             "tests/test_docs.py checks that it is up to date.", ""]
    sections: dict[str, list[Entry]] = {}
    for e in entries:
        head = e.name.rsplit(".", 1)[0]
        sections.setdefault(head, []).append(e)
    for head, items in sections.items():
        lines += [f"## {head}", ""]
        for e in items:
            short = e.name.rsplit(".", 1)[1]
            # fn.forward and fn.backward are objects: they are called as their __call__ is
            called = e.obj.__call__ if e.kind == "method" and inspect.isclass(e.obj) else e.obj
            sig = "" if e.kind == "property" else signature_text(called)
            label = f"{e.kind} " if e.kind in ("class", "property") else ""
            lines.append(f"- {label}`{short}{sig}`: {_fence(first_line(e.obj))}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None, write: Callable[[str], Any] = sys.stdout.write) -> int:
    """`python -m symgrad.apidoc`: the reference page, on standard output."""
    write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
