"""Rendering schedules as C or CUDA text with the jinja2 templates in `templates/`."""
from __future__ import annotations

import functools
import math
import os
from typing import TYPE_CHECKING

import jinja2
import numpy as np

from symgrad import dtypes
from symgrad._version import __version__
from symgrad.build import templates_dir
from symgrad.codegen import kernel as K
from symgrad.dims import Dim, names_in
from symgrad.codegen.ir import lower
from symgrad.blas import BLAS_SHARE_MIN, BLAS_SMALL_MAX, BLAS_SMALL_SPLIT, matmul_path
from symgrad.codegen.body_passes import streamed_types
from symgrad.codegen.kernel_passes import written_buffers
from symgrad.codegen.schedule import PARALLEL_MIN, Scheduler, padded_bytes, describe
from symgrad.ops import LIBM, OPS, c_expression
from symgrad.codegen.names import NameTable, comment_safe
from symgrad.codegen.outline import outline
from symgrad.ops.primitives import vector_math

if TYPE_CHECKING:
    from symgrad.backends.base import Backend


def size_name(name: str) -> str:
    """The C local holding the size of the named dimension `name` (read from the size
    arguments at the top of each function); `sg_` names are never a user's (NameTable)."""
    return f"sg_n_{name}"


def c_int(x) -> str:
    """A size as C: the literal of an int, the expression of a symbolic one (symgrad.dims) over
    the size locals. Every size the templates and c_text render goes through here."""
    if not isinstance(x, Dim):
        return str(int(x))
    return _terms_text(x.terms)


def _terms_text(terms) -> str:
    parts = []
    for mono, c in terms:
        factors = [size_name(a) if isinstance(a, str) else _quotient_text(a) for a in mono]
        body = "*".join(factors + ([str(abs(c))] if abs(c) != 1 or not factors else []))
        parts.append(("- " if c < 0 else "+ ") + body)
    text = " ".join(parts) or "+ 0"
    text = text[2:] if text.startswith("+ ") else "-" + text[2:]
    return f"({text})" if len(parts) > 1 or text.startswith("-") else text


def _quotient_text(q) -> str:
    return f"({_terms_text(q.num)} {'/' if q.op == '//' else '%'} {_terms_text(q.den)})"


def _finalize(value):
    """What `{{ x }}` prints: a symbolic size as its C expression (c_int), the rest as is."""
    return c_int(value) if isinstance(value, Dim) else value


def _cnum(value, ctype):
    if isinstance(value, Dim):
        return f"((int64_t){c_int(value)})" if ctype == "int64_t" else f"(({ctype}){c_int(value)})"
    if ctype in ("float", "double"):
        v = float(value)
        if math.isnan(v):
            return "NAN"
        if math.isinf(v):
            return "INFINITY" if v > 0 else "(-INFINITY)"
        text = repr(float(np.float32(v))) if ctype == "float" else repr(v)
        return f"{text}f" if ctype == "float" else text
    if ctype == "uint8_t":
        return "1" if value else "0"
    return f"INT64_C({int(value)})" if ctype == "int64_t" else str(int(value))


@functools.lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    from symgrad.build import build_dir
    # Compiled templates are cached across processes (jinja's compile takes 0.1-0.2 s): beside
    # the templates, as Python keeps its bytecode beside the modules, so that a new build cache
    # does not compile them again; in the build cache where the templates' folder is read-only.
    bytecode = None
    for folder in (templates_dir() / "__pycache__", build_dir() / "jinja"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            bytecode = jinja2.FileSystemBytecodeCache(str(folder))
            break
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False, bytecode_cache=bytecode, finalize=_finalize)
    env.filters["cnum"] = _cnum
    env.filters["c"] = c_text
    env.filters["cint"] = c_int
    env.globals["size_name"] = size_name
    env.globals["vector_math"] = vector_math()       # the libm functions with SIMD variants
    env.globals["ind"] = lambda depth: "    " * depth
    env.globals["parallel_min"] = PARALLEL_MIN
    env.globals["blas_share_min"] = BLAS_SHARE_MIN
    env.globals["blas_small_max"], env.globals["blas_small_split"] = BLAS_SMALL_MAX, BLAS_SMALL_SPLIT
    return env


@functools.lru_cache(maxsize=None)
def ops_module():
    """The op macros (templates/c/ops.j2): valid C and CUDA device code alike."""
    return environment().get_template("c/ops.j2").module


@functools.lru_cache(maxsize=None)
def kernel_macros():
    """The loop-nest macros (templates/c/kernels.j2), for rules the CUDA backend shares."""
    return environment().get_template("c/kernels.j2").module


def render_matmul_object(types) -> str:
    """The source of the object holding the product helpers of `types` (symgrad.backends.objects)."""
    return environment().get_template("c/matmul.c.j2").render(
        version=__version__, matmul_types=sorted(types), matmul_object=True, linked_matmul=(),
        path_code=(), linked_paths=(), helpers=set(), export=False)


def render_path_object(kind: str, ctype: str) -> str:
    """The source of the object holding the product path `kind` of `ctype` (templates/c/paths.j2,
    symgrad.backends.objects)."""
    return environment().get_template("c/paths.c.j2").render(version=__version__, kind=kind, ct=ctype)


def c_text(e) -> str:
    """A kernel IR expression as C (also valid CUDA device code). Ints and strings (loop
    extents, names) pass through."""
    if isinstance(e, Dim):
        return c_int(e)
    if isinstance(e, (str, int)):
        return str(e)
    if isinstance(e, K.Ref):
        return e.let.name
    if isinstance(e, K.Idx):
        return e.name
    if isinstance(e, K.Affine):
        return _affine_text(e)
    if isinstance(e, K.Load):
        return f"{e.buf.name}[{c_text(e.index)}]"
    if isinstance(e, K.Lit):
        return _cnum(e.value, e.ctype)
    if isinstance(e, K.Call):
        attrs = {k: c_int(v) if isinstance(v, Dim) else v for k, v in e.attrs}    # (a range's bound)
        return c_expression(e.op, [c_text(a) for a in e.args], e.ctype, e.in_ctype, attrs)
    if isinstance(e, K.Select):
        return f"({_operand(e.cond)} ? {_operand(e.a)} : {_operand(e.b)})"
    if isinstance(e, K.Bin):
        return f"({_operand(e.a)} {e.op} {_operand(e.b)})"
    if isinstance(e, K.Cast):
        return f"(({e.ctype}){c_text(e.x)})"
    if isinstance(e, K.Init):
        return str(ops_module().reduce_init(e.op, e.ctype))
    raise TypeError(f"not a kernel expression: {e!r}")


def _operand(e) -> str:
    """An operand of a C operator: a sum is parenthesised."""
    text = c_text(e)
    if isinstance(e, K.Affine) and len(e.terms) + bool(e.const) > 1:
        return f"({text})"
    return text


def _affine_text(e: K.Affine) -> str:
    parts = []
    for atom, coef in e.terms:
        text = c_text(atom)
        if not isinstance(atom, K.Idx):
            text = f"({text})"
        term = text if abs(coef) == 1 else f"{text} * {c_int(abs(coef))}"
        parts.append(("- " if coef < 0 else "+ ") + term)
    if e.const or not parts:
        parts.append(("- " if e.const < 0 else "+ ") + c_int(abs(e.const)))
    text = " ".join(parts)
    return text[2:] if text.startswith("+ ") else "-" + text[2:]


def path_code(kernels) -> list:
    """(path, element type) of each product path the products in `kernels` take (symgrad/blas.py,
    product_path; templates/c/paths.j2): the code a module of them has or links."""
    return sorted({(k.extra["path"].kind, k.extra["ctype"]) for k in kernels
                   if k.kind == "matmul" and k.extra.get("path") is not None})


# The helpers of templates/c/helpers.h.j2 (and cuda/helpers.cuh.j2) a module needs, by the calls
# that use them: integer ones, symgrad's own float libm functions (LIBM's `own`), streamed stores.
def _helpers(schedule) -> set:
    kernels = [p for k in schedule.kernels for p in [k, *k.extra.get("parts", ())]]   # (rows kernels' parts)
    exprs = [let.expr for k in kernels for let in k.lets]
    out = set()
    for e in K.walk(*exprs):
        if isinstance(e, K.Call) and e.ctype == "float":
            out |= {LIBM[name].own for name in OPS[e.op].libm if LIBM[name].own}
        if isinstance(e, K.Call) and e.ctype not in ("float", "double"):
            if e.op == "pow":
                out.add("sg_ipow")
            elif e.op == "div":
                out.add(f"sg_floordiv_{e.ctype}")
    out |= {f"sg_stream_{ct}" for ct in streamed_types(schedule.kernels)}
    return out


PART_STATEMENTS = 400     # a C function of more generated statements than this is cut into parts


def _parts(kernels) -> list:
    """The kernels in order, cut into runs of at most PART_STATEMENTS statements (locals of
    the loop bodies, a kernel counting one at least): one C function each, so that the C
    compiler's superlinear passes (register allocation) see small functions. Functions
    this small or smaller stay one part."""
    def weight(k):
        return 1 + len(k.lets) + sum(weight(p) for p in k.extra.get("parts", ()))
    parts, current, total = [], [], 0
    for k in kernels:
        w = weight(k)
        if current and total + w > PART_STATEMENTS:
            parts.append(current)
            current, total = [], 0
        current.append(k)
        total += w
    return parts + [current] if current else parts


def _buffers(k) -> set:
    """The names of the buffers kernel `k` reads or writes (a rows kernel's `reads` hold its
    parts' reads)."""
    return set(k.extra.get("reads", ())) | {b.name for b in written_buffers(k)}


def _part_contexts(kernels, tmps) -> list:
    """Each part of a function (see `_parts`): its kernels and the scratch buffers they use,
    the only ones the part's C function declares."""
    out = []
    for part in _parts(kernels):
        used = set().union(*(_buffers(k) for k in part))
        out.append({"kernels": part, "tmps": [t for t in tmps if t.name in used]})
    return out


def schedule_function(args, outputs, fn_name: str, title: str, backend: Backend, out_names=None,
                      aliases=None):
    """Lower and schedule one function for `backend`; returns (context, schedule, graph), the
    context being what the module template renders of it (see `render_module`)."""
    graph = lower(args, outputs)
    names = NameTable()
    names.used |= backend.reserved_words      # CUDA's C++ keywords and built-ins: `new` becomes new_2
    schedule = Scheduler(graph, names, column_reductions=backend.column_sums(), out_names=out_names,
                         aliases=aliases, row_fusion=backend.row_fusion,
                         tiled_transposes=backend.tiled_transposes).build()
    params = schedule.args + schedule.consts + schedule.outs
    matmul_types = sorted({k.extra["ctype"] for k in schedule.kernels if k.kind == "matmul"})
    checks = sorted({f"{n.attrs['what']} in [{n.attrs['lo']}, {n.attrs['hi']})"
                     for n in graph.nodes() if n.op == "check_range"})
    inputs = ", ".join(f"{b.name} {b.node.shape} {b.node.dtype}" for b in schedule.args)
    summary = [f"inputs:  {inputs or '-'}"]
    if schedule.consts:
        consts = ", ".join(f"{b.name} {b.node.shape}" for b in schedule.consts)
        summary.append(f"captured constants: {consts}")
    for o, target in schedule.updates:
        summary.append(f"updated in place: {target.name} {target.node.shape} = {describe(o, 4)}")
    for b in schedule.outs:
        summary.append(f"output:  {b.name} {b.node.shape} {b.node.dtype} = {describe(b.node, 4)}")
    summary.append(f"{len(schedule.kernels)} loop nest{'s' if len(schedule.kernels) != 1 else ''}, "
                   f"{len(schedule.tmps)} intermediate buffer{'s' if len(schedule.tmps) != 1 else ''}")
    for k in schedule.kernels:
        if k.kind == "matmul":          # (symgrad's own product paths, decided from shapes and strides)
            k.extra["path"] = matmul_path(k.extra)
        k.comment = comment_safe(k.comment)
        if k.extra.get("comments"):
            k.extra["comments"] = [comment_safe(c) for c in k.extra["comments"]]
    context = dict(title=comment_safe(title), summary=[comment_safe(line) for line in summary],
                   fn=fn_name, dims=_size_arguments(graph, schedule), params=params, tmps=schedule.tmps,
                   kernels_list=schedule.kernels, parts=_part_contexts(schedule.kernels, schedule.tmps),
                   scratch_bytes=schedule.scratch_bytes, matmul_types=matmul_types,
                   path_code=path_code(schedule.kernels), helpers=_helpers(schedule),
                   checks=[comment_safe(c) for c in checks], shares=None,
                   **backend.template_context(schedule))
    schedule.checks = checks
    return context, schedule, graph


def shared_context(fn_name: str, title: str, other_name: str, schedule, n_values: int) -> dict:
    """The context of an entry point computed by another function's code (compile.Function.share:
    `other_name`'s, whose schedule is `schedule`; static shapes only): it takes that function's parameters but
    its first `n_values` outputs, which that code writes into the scratch past its own and
    which are dropped."""
    values, at = [], padded_bytes(schedule.scratch_bytes) if schedule.scratch_bytes else 0
    for b in schedule.outs[:n_values]:
        values.append((b, at))
        at += padded_bytes(b.size * dtypes.ITEMSIZE[b.ctype])
    offsets = {id(b): off for b, off in values}
    outs = schedule.outs[n_values:]
    inputs = ", ".join(f"{b.name} {b.node.shape} {b.node.dtype}" for b in schedule.args)
    summary = [f"inputs:  {inputs or '-'}"]
    summary += [f"output:  {b.name} {b.node.shape} {b.node.dtype} = {describe(b.node, 4)}" for b in outs]
    called = schedule.args + schedule.consts + schedule.outs
    return dict(title=comment_safe(title), summary=[comment_safe(line) for line in summary], fn=fn_name,
                dims=[], params=schedule.args + schedule.consts + outs, tmps=[], kernels_list=[], parts=[],
                scratch_bytes=at, matmul_types=[], path_code=[], helpers=set(), checks=[],
                shares=dict(fn=other_name, values=[b for b, _ in values],
                            offset=values[0][1] if values else at,
                            call=[(b, offsets.get(id(b))) for b in called]))


def _size_arguments(graph, schedule) -> list:
    """The names of the symbolic dimensions a function takes as size arguments (sorted): those
    of its inputs' shapes, which every other size is an expression of."""
    given = names_in(*(b.node.shape for b in schedule.args))
    used = names_in(*(n.shape for n in graph.nodes()))
    missing = sorted(set(used) - set(given))
    if missing:
        raise ValueError(f"sg.compile: the graph has sizes of the dimensions {', '.join(missing)}, which "
                         f"no input's shape holds, so no call could give them")
    return given


def render_module(functions: list, title: str, backend: Backend, export: bool = False,
                  linked=()) -> str:
    """One module holding every function of `functions` (contexts from `schedule_function`):
    the helpers once, each function's entry points under its own name. `export`: plain C for
    `fn.export` (no symgrad runtime: `sg_serial` is a constant of the file). `linked`: the
    objects compiled once that the module links in rather than compiles what they hold
    (symgrad.backends.objects): ("matmul", element type) for the product helpers, (path,
    element type) for a product path (`path_code`)."""
    template = environment().get_template(backend.module_template)
    macros = kernel_macros()
    statics = outline(functions, lambda k: getattr(macros, k.kind + "_kernel")(k)) \
        if backend.outlines_nests else []
    merged = dict(functions[0])
    merged.update(matmul_types=sorted({t for f in functions for t in f["matmul_types"]}),
                  path_code=sorted({c for f in functions for c in f["path_code"]}),
                  helpers=set().union(*(f["helpers"] for f in functions)),
                  any_checks=any(f["checks"] for f in functions))
    return template.render(version=__version__, functions=functions, module_title=comment_safe(title),
                           export=export, outlined=statics, matmul_object=False,
                           linked_matmul=tuple(ct for kind, ct in linked if kind == "matmul" and not export),
                           linked_paths=tuple(w for w in linked if w[0] != "matmul" and not export),
                           **{k: v for k, v in merged.items() if k != "title"},
                           title=functions[0]["title"] if len(functions) == 1 else comment_safe(title))

