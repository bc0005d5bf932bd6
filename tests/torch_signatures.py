"""PyTorch's documented signatures, read from the installed torch (its docstrings, or
`inspect.signature` where torch has a Python signature), for tests/test_api_signatures.py."""
from __future__ import annotations

import inspect

from symgrad.signatures import parse


def _doc_lines(obj, name: str) -> list[str]:
    """The signature lines of `name` in `obj`'s docstring: its first line and every
    `.. function::` / `.. method::` overload."""
    doc = getattr(obj, "__doc__", None) or ""
    lines = [line.strip() for line in doc.strip().splitlines()]
    found = []
    for k, line in enumerate(lines):
        for prefix in (".. function:: ", ".. method:: "):
            if line.startswith(prefix):
                line = line[len(prefix):]
        if line.startswith(name + "(") and (k == 0 or lines[k - 1] == "" or "->" in line) and ")" in line:
            found.append(line)
    return found


def _parameters(line: str, name: str) -> str:
    body = line[len(name) + 1:]
    depth = 1
    for k, ch in enumerate(body):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return body[:k]
    return body


def overloads(obj, name: str) -> list[list]:
    """Each documented overload of `obj` (named `name`) as a list of symgrad.signatures
    Parameters; [] where torch documents none."""
    try:
        sig = inspect.signature(obj)
        params = [p for p in sig.parameters.values() if p.name != "self"]
        text = ", ".join(("*" + p.name) if p.kind is p.VAR_POSITIONAL else p.name for p in params
                         if p.kind is not p.VAR_KEYWORD)
        if params and not any(p.kind is p.VAR_KEYWORD for p in params):
            return [parse(text)]
    except (TypeError, ValueError):
        pass
    return [parse(_parameters(line, name)) for line in _doc_lines(obj, name)]
