"""Seeing what was built: PyTorch-style printing of values, debugprint and Graphviz."""
from __future__ import annotations

import math
from typing import Any, TextIO

import numpy as np

from symgrad.graph import toposort



class _PrintOptions:
    """How values print (`sg.set_printoptions`), with PyTorch's defaults."""

    def __init__(self):
        self.precision, self.threshold, self.edgeitems, self.linewidth = 4, 1000, 3, 80
        self.sci_mode = None      # None: chosen from the values, as PyTorch does


OPTIONS = _PrintOptions()
_PROFILES = {"default": (4, 1000, 3, 80), "short": (2, 1000, 2, 80), "full": (4, math.inf, 3, 80)}


def set_printoptions(precision: int | None = None, threshold: int | None = None, edgeitems: int | None = None,
                     linewidth: int | None = None, profile: str | None = None,
                     sci_mode: bool | None = None) -> None:
    """Sets how Variables print their values. PyTorch: `torch.set_printoptions`.

    The options: digits after the point, the element count above which a value is summarised
    with `...`, items shown at each end then, characters per line, a profile ("default",
    "short", "full") setting all four first, and scientific notation forced on (True), off
    (False) or chosen from the values (None)."""
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: profile must be one of {', '.join(_PROFILES)}, "
                             f"got {profile!r}")
        OPTIONS.precision, OPTIONS.threshold, OPTIONS.edgeitems, OPTIONS.linewidth = _PROFILES[profile]
    for name, value in [("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                        ("linewidth", linewidth)]:
        if value is not None:
            setattr(OPTIONS, name, value)
    OPTIONS.sci_mode = sci_mode


def get_printoptions() -> dict:
    """The current print options, as a dict of their names and values. PyTorch:
    `torch.get_printoptions`."""
    return {"precision": OPTIONS.precision, "threshold": OPTIONS.threshold, "edgeitems": OPTIONS.edgeitems,
            "linewidth": OPTIONS.linewidth, "sci_mode": OPTIONS.sci_mode}


class _Formatter:
    """Chooses one format for every element, as PyTorch's printer does."""

    def __init__(self, values: np.ndarray):
        self.floating = values.dtype.kind == "f"
        self.int_mode, self.sci_mode, self.max_width = True, False, 1
        flat = values.reshape(-1)
        if not self.floating:
            for v in flat:
                self.max_width = max(self.max_width, len(self._plain(v)))
            return
        finite = flat[np.isfinite(flat) & (flat != 0)].astype(np.float64)
        if finite.size == 0:
            return
        lo, hi = np.abs(finite).min(), np.abs(finite).max()
        self.int_mode = bool(np.all(finite == np.ceil(finite)))
        self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4
        if OPTIONS.sci_mode is not None:
            self.sci_mode = bool(OPTIONS.sci_mode)
        precision = OPTIONS.precision
        if self.int_mode:
            widths = [len(f"{v:.{precision}e}") if self.sci_mode else len(f"{v:.0f}") + 1 for v in finite]
        else:
            fmt = f".{precision}e" if self.sci_mode else f".{precision}f"
            widths = [len(format(v, fmt)) for v in finite]
        self.max_width = max(self.max_width, *widths)

    def _plain(self, v):
        return str(bool(v)) if isinstance(v, (bool, np.bool_)) else str(v)

    def format(self, v) -> str:
        if self.floating:
            v = float(v)
            if self.sci_mode:
                s = f"{v:{self.max_width}.{OPTIONS.precision}e}"
            elif self.int_mode:
                s = f"{v:.0f}" + ("" if math.isinf(v) or math.isnan(v) else ".")
            else:
                s = f"{v:.{OPTIONS.precision}f}"
        else:
            s = self._plain(v.item() if hasattr(v, "item") else v)
        return " " * (self.max_width - len(s)) + s


def _summarized(a: np.ndarray) -> np.ndarray:
    if a.ndim == 0:
        return a
    if a.shape[0] > 2 * OPTIONS.edgeitems:
        a = np.concatenate([a[:OPTIONS.edgeitems], a[-OPTIONS.edgeitems:]])
    return np.stack([_summarized(x) for x in a]) if a.ndim > 1 else a


def _body(a: np.ndarray, indent: int, fmt: _Formatter, summarize: bool) -> str:
    if a.ndim == 0:
        return fmt.format(a.item())
    if a.ndim == 1:
        width = fmt.max_width + 2
        per_line = max(1, (OPTIONS.linewidth - indent) // width)
        if summarize and a.shape[0] > 2 * OPTIONS.edgeitems:
            items = [fmt.format(v) for v in a[:OPTIONS.edgeitems]] + [" ..."] + \
                    [fmt.format(v) for v in a[-OPTIONS.edgeitems:]]
        else:
            items = [fmt.format(v) for v in a]
        lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    rows = range(a.shape[0])
    if summarize and a.shape[0] > 2 * OPTIONS.edgeitems:
        edge = OPTIONS.edgeitems
        rows = list(range(edge)) + [None] + list(range(a.shape[0] - edge, a.shape[0]))
    parts = ["..." if i is None else _body(a[i], indent + 1, fmt, summarize) for i in rows]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def array_str(a: np.ndarray, indent: int = 7) -> str:
    summarize = a.size > OPTIONS.threshold
    fmt = _Formatter(_summarized(a) if summarize else a)
    return _body(a, indent, fmt, summarize)


def variable_repr(v) -> str:
    if not v.is_concrete:
        return f"Variable(name={v.name or '?'}, shape={v.shape}, dtype={v.dtype}" + \
            (", requires_grad=True)" if v.requires_grad else ")")
    prefix = "tensor("
    a = v.value()
    suffixes = []
    if a.size == 0:
        body = "[]"
        if a.ndim != 1:
            suffixes.append(f"size={a.shape}")
        if a.dtype != np.float32:
            suffixes.append(f"dtype=symgrad.{a.dtype}")
    else:
        body = array_str(a, len(prefix))
        if a.dtype not in (np.float32, np.int64, np.bool_):
            suffixes.append(f"dtype=symgrad.{a.dtype}")
    if v.grad_fn is not None:
        suffixes.append(f"grad_fn=<{type(v.grad_fn).__name__}>")
    elif v.requires_grad:
        suffixes.append("requires_grad=True")
    text = prefix + body
    last = len(text) - text.rfind("\n") + 1
    for s in suffixes:
        if last + len(s) + 2 > OPTIONS.linewidth:
            text += ",\n" + " " * len(prefix) + s
            last = len(prefix) + len(s)
        else:
            text += ", " + s
            last += len(s) + 2
    return text + ")"


# --- graphs ------------------------------------------------------------------------------------

def _outputs_of(obj):
    if hasattr(obj, "graph_outputs"):
        return list(obj.graph_outputs)
    return list(obj) if isinstance(obj, (list, tuple)) else [obj]


def _label(v) -> str:
    if v.op is None:
        if v._literal:
            return f"{v.value().item()!r}"
        kind = "input" if v._value is None else "constant"
        return f"{kind} {v.name or ''}".rstrip()
    attrs = ", ".join(f"{k}={val}" for k, val in v.attrs.items())
    return f"{v.op}({attrs})" if attrs else v.op


def debugprint(obj: Any, file: TextIO | None = None, after: str | None = None) -> str:
    """The graph as indented text, one node a line, outputs first, with shapes and dtypes.
    A node already printed is referred to by its number.

    With `after`, the graph the compiler works on instead: `obj` (sg.compile's result, its
    `forward`, `backward` or `value_and_grad`, or outputs) lowered and put through the
    passes up to and including `after` ("lower" for none; a phase such as "fold" or
    "canonicalize"; a rewrite's name: see symgrad.passes), as SYMGRAD_DISABLE_PASSES allows."""
    from symgrad import passes
    from symgrad.codegen.ir import format_graph, lower
    if after is None:
        text = format_graph(_outputs_of(obj), _label)
    elif passes.is_kernel_pass(after):
        text = format_kernels(_args_and_outputs(obj), after)
    else:
        text = format_graph(lower(*_args_and_outputs(obj), after=after).outputs)
    print(text, file=file)
    return text


def format_kernels(args_and_outputs, after: str) -> str:
    """The loop nests (kernel IR) of a graph after the kernel pass `after`, as text: each
    nest's loops, then its locals, stores and accumulators, expressions as in the C."""
    from symgrad import passes
    from symgrad.codegen.ir import lower
    from symgrad.codegen.names import NameTable
    from symgrad.codegen.render import c_text
    from symgrad.codegen.schedule import Scheduler
    schedule = Scheduler(lower(*args_and_outputs), NameTable(),
                         kernel_passes=passes.kernel_passes(upto=after)).build()
    lines = []

    def show(k, label, pad):
        loops = " ".join(f"{v}<{extent}" for v, extent in k.loops)
        lines.append(f"{pad}{label} ({k.kind}) {k.comment}")
        lines.append(f"{pad}  loops: {loops or '-'}" + (f" (outer {k.outer})" if k.kind != "matmul" else ""))
        for b, n in k.extra.get("row_buffers", ()):
            lines.append(f"{pad}  row buffer: {b.name}[{n}] (one row of {b.node.shape})")
        for m, part in enumerate(k.extra.get("parts", ())):
            show(part, f"part {m}", pad + "  ")
        for let in k.lets:
            lines.append(f"{pad}    {let.name} = {c_text(let.expr)}")
        for st in k.extra.get("stores", ()):
            streamed = " (streamed)" if st.get("stream") else ""
            lines.append(f"{pad}    {st['buf'].name}[{c_text(st['index'])}] = {c_text(st['value'])}"
                         + streamed)
        for c in k.extra.get("cols", ()):           # column sums merged in (merge_parts)
            lines.append(f"{pad}    column sum {c.out.name}[{c_text(c.out_index)}] += {c_text(c.value)}")
        for b, base, _ in k.extra.get("prefetch", {}).get("bufs", ()):
            lines.append(f"{pad}    prefetch: the next row of {b.name}, from {c_text(base)}")
        for a in k.extra.get("accs", ()):
            where = f"{a['out'].name}[{c_text(a['index'])}]"
            across = " (over all the rows)" if a.get("global") else ""
            lines.append(f"{pad}    {a['name']} {a['op']}= {c_text(a['value'])}  -> {where}{across}")
        if k.kind not in ("nest", "rows") and k.value is not None:
            where = f"{k.out.name}[{c_text(k.out_index)}]"
            lines.append(f"{pad}    {k.reduce_op or 'value'}: {c_text(k.value)} -> {where}")
    for n, k in enumerate(schedule.kernels):
        show(k, f"kernel {n}", "")
    return "\n".join(lines)


def _args_and_outputs(obj):
    """What a compiled function was compiled from; for plain outputs, their symbolic leaves
    are the arguments (leaves holding values are captured as constants, as sg.compile does)."""
    if hasattr(obj, "graph_outputs"):               # compiled: sg.compile's result or a part
        fn = getattr(obj, "forward_fn", None) or getattr(obj, "_fn", lambda: obj)()
        return fn.args, fn.graph_outputs
    outputs = _outputs_of(obj)
    return [v for v in toposort(outputs) if v.op is None and v._value is None], outputs


def to_dot(obj: Any) -> str:
    """Graphviz source of the graph of `obj`'s outputs (render it with `dot -Tsvg`)."""
    outputs = _outputs_of(obj)
    order = toposort(outputs)
    ids = {id(v): f"n{k}" for k, v in enumerate(order)}
    out_ids = {id(o) for o in outputs}
    lines = ["digraph symgrad {", "  rankdir=BT;", '  node [fontname="monospace", fontsize=10];']
    for v in order:
        label = f"{_label(v)}\\n{v.shape} {v.dtype.name}".replace('"', '\\"')
        if v.name:
            label = f"{v.name}\\n" + label
        shape = "box" if v.op is None else "ellipse"
        style = ', style=bold' if id(v) in out_ids else ""
        lines.append(f'  {ids[id(v)]} [label="{label}", shape={shape}{style}];')
        for i in v.inputs:
            lines.append(f"  {ids[id(i)]} -> {ids[id(v)]};")
    lines.append("}")
    return "\n".join(lines)
