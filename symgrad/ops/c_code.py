"""The C facet of elementwise ops: each entry's jinja snippet, rendered by one function.

A snippet sees its operands' C expressions as `a`, `b`, `c` (in input order), the result's
C type `ct` and the operands' `in_ct`, `is_float` (ct is float or double), the op's
attributes by name, and `libm.<name>`: the libm functions the entry lists in its `libm`
facet, spelt for `ct` (`libm.exp` is `expf` for float). A snippet that calls a function it
does not list fails to render, so the reserved words and vector-math declarations derived
from `libm` cannot miss one. The result is valid C and CUDA device code alike."""
from __future__ import annotations

import functools
from typing import Iterable, Mapping

import jinja2

from symgrad.ops.registry import LIBM, OPS

FLOAT_CTYPES = ("float", "double")
OPERANDS = "abc"


class CExpressionError(ValueError):
    """An op's C snippet could not be rendered: missing, or reading something it lacks."""


@functools.lru_cache(maxsize=None)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


@functools.lru_cache(maxsize=None)
def _compiled(snippet: str) -> jinja2.Template:
    return _environment().from_string(snippet)


def libm_spelling(names: Iterable[str], ct: str) -> dict[str, str]:
    """The C names of libm functions for values of C type `ct`: `expf` for float, `exp`
    otherwise (integer operands are promoted to double by C); for float, symgrad's own where
    LIBM names one (`sg_expf`)."""
    return {name: (LIBM[name].own or name + "f") if ct == "float" else name for name in names}


def c_expression(op_name: str, args: Iterable[str], ct: str, in_ct: str,
                 attrs: Mapping | Iterable = ()) -> str:
    """The C expression of `op_name` applied to the operand expressions `args`; `attrs` are the
    node's attributes (a mapping or (name, value) pairs)."""
    op = OPS.get(op_name)
    if op is None or op.c is None:
        raise CExpressionError(f"op {op_name!r} has no C expression (only registered elementwise ops do)")
    args = list(args)
    if len(args) > len(OPERANDS):
        raise CExpressionError(f"op {op_name!r}: {len(args)} operands, snippets name at most {len(OPERANDS)}")
    context = dict(attrs)
    context.update(zip(OPERANDS, args))
    context.update(ct=ct, in_ct=in_ct, is_float=ct in FLOAT_CTYPES, libm=libm_spelling(op.libm, ct))
    try:
        return _compiled(op.c).render(context)
    except jinja2.UndefinedError as e:
        raise CExpressionError(f"op {op_name!r}: its C snippet reads something it is not given ({e}); "
                               f"a libm function it calls must be listed in its libm facet "
                               f"(libm={op.libm!r})") from None
    except jinja2.TemplateSyntaxError as e:
        raise CExpressionError(f"op {op_name!r}: its C snippet is not valid jinja ({e})") from None
