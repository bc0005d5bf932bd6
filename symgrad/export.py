"""`fn.export(directory, prefix)`: a compiled function as plain C99 for programs without Python.

Writes `<prefix>.c`, `<prefix>.h` and `README`. The C file needs only libm (and, optionally,
OpenMP: built without -fopenmp its pragmas are ignored and the loops run serially); no Python,
no cffi, no symgrad runtime, no BLAS unless `blas=True`. Every symbol it defines starts with
the prefix, so exports with different prefixes link into one program. Each entry point is

    int <prefix>_<name>(inputs..., outputs..., void *workspace[, int64_t n_<dim>...])

returning 0, 1 when memory runs out, or 2 when a value the graph checks is out of range;
`workspace` is scratch of `<prefix>_<name>_workspace_bytes([n_<dim>...])` bytes the caller may
allocate once and reuse, or NULL (then each call allocates its own). A graph of symbolic
dimensions (symgrad.dims) takes their sizes last, one int64_t each (`n_batch`), in the order
of their names; the caller passes arrays of those sizes (checking them is the caller's)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from symgrad.backends import backend as backend_named
from symgrad.codegen.names import comment_safe

# The entry points of a compiled function that are exported, in order.
ENTRIES = ("forward", "backward", "value_and_grad")


def _check_prefix(prefix: str) -> str:
    if not (isinstance(prefix, str) and prefix.isascii() and prefix.isidentifier()):
        raise ValueError(f"export: prefix must be a C identifier (letters, digits, _), got {prefix!r}")
    if prefix.startswith("sg_") or prefix == "sg":
        raise ValueError(f"export: prefix {prefix!r} would clash with the generated code's own names "
                         f"(sg_...); choose another")
    return prefix


def _functions(compiled):
    """The Functions to export: forward, and backward and value_and_grad when the graph has a
    gradient that needs no grad_outputs."""
    out = [("forward", compiled.forward_fn)]
    for name, fn in (("backward", compiled.backward_fn), ("value_and_grad", compiled.value_and_grad_fn)):
        if fn is not None:
            out.append((name, fn))
    return out


def _values(arr, ctype) -> str:
    from symgrad.codegen.render import _cnum
    flat = np.ascontiguousarray(arr).reshape(-1)
    items = [_cnum(v, ctype) for v in flat.tolist()] or ["0"]
    lines = [", ".join(items[i:i + 8]) for i in range(0, len(items), 8)]
    return "{\n    " + ",\n    ".join(lines) + "\n}"


def _role(b) -> str:
    if b.kind == "out":
        return "output"
    return "input" if b.const else "input, updated in place"


def _shape(b) -> str:
    shape = tuple(b.node.shape)
    return "scalar" if not shape else "[" + "][".join(map(str, shape)) + "]"


def export(compiled, directory, prefix: str = "name", blas: bool = False) -> dict:
    """Write `<prefix>.c`, `<prefix>.h` and `README` into `directory` (made if missing); returns
    {"c": path, "h": path, "readme": path, "entries": [entry point names]}."""
    if compiled.backend not in ("c", "interp"):
        raise ValueError(f"export: the {compiled.backend} backend's functions cannot be exported as plain C; "
                         f"compile with backend='c'")
    prefix = _check_prefix(prefix)
    from symgrad.codegen.render import render_module, schedule_function
    c_backend = backend_named("c")
    contexts, publics, header = [], [], []
    functions = _functions(compiled)
    names = [name for name, _ in functions]
    for name, fn in functions:
        impl = f"{prefix}_{name}_impl"
        context, schedule, _ = schedule_function(fn.args, fn.graph_outputs, impl, fn._title, c_backend,
                                                 fn.out_names, fn.updates)
        contexts.append(context)
        public = f"{prefix}_{name}"
        params = [b for b in context["params"] if b.kind != "const"]
        consts = [b for b in context["params"] if b.kind == "const"]
        decl_args = [f"{'const ' if b.const else ''}{b.ctype} *{b.name}" for b in params]
        decl_args.append("void *workspace")
        # symbolic dimensions (symgrad.dims): their sizes are the last arguments, n_<name>
        taken = {b.name for b in params} | {"workspace", "own", "status"}
        sizes = [f"n_{d}" if f"n_{d}" not in taken else f"n_{d}_size" for d in context["dims"]]
        size_args = [f"int64_t {n}" for n in sizes]
        signature = f"int {public}({', '.join(decl_args + size_args)})"
        lines = [f"/* {comment_safe(fn._title)} */"]
        for k, b in enumerate(consts):
            lines.append(f"static const {b.ctype} {public}_k{k}[{max(1, b.size)}] = "
                         f"{_values(b.node.value, b.ctype)};")
        call = [b.name if b.kind != "const" else f"{public}_k{consts.index(b)}" for b in context["params"]]
        if sizes:
            pack = f"    const int64_t sg_sizes[{len(sizes)}] = {{{', '.join(sizes)}}};"
            nbytes, call = f"{impl}_workspace_bytes_at(sg_sizes)", call + ["(char *)workspace", "sg_sizes"]
        else:
            pack, nbytes, call = None, f"{impl}_workspace_bytes()", call + ["(char *)workspace"]
        lines += [f"long long {public}_workspace_bytes({', '.join(size_args) or 'void'})", "{"] + \
            ([pack] if pack else []) + [f"    return {nbytes};", "}", "", signature, "{"] + \
            ([pack] if pack else []) + [
                  "    void *own = NULL;",
                  "    int status;",
                  f"    if (!workspace && {nbytes} > 0) {{",
                  f"        own = malloc((size_t){nbytes});",
                  "        if (!own) return 1;",
                  "        workspace = own;",
                  "    }",
                  f"    status = {impl}({', '.join(call)});",
                  "    free(own);",
                  "    return status;", "}", ""]
        publics.append("\n".join(lines))
        doc = [f"/* {public}: {comment_safe(fn._title)}", " *"]
        for k, b in enumerate(params):
            doc.append(f" *   {k}. {b.name:<12} {_role(b):<24} {b.ctype:<8} {_shape(b)} ({b.node.dtype}, "
                       f"{max(1, b.size)} element{'s' if b.size != 1 else ''}, C order)")
        checks = f" ({'; '.join(comment_safe(c) for c in schedule.checks)})" if schedule.checks else ""
        doc += [f" *   {len(params)}. workspace    scratch of {public}_workspace_bytes({', '.join(sizes)}) "
                f"bytes, reused across calls (while the sizes do not grow), or NULL"]
        doc += [f" *   {len(params) + 1 + k}. {n:<12} the size of the dimension {d}"
                for k, (n, d) in enumerate(zip(sizes, context["dims"]))]
        doc += [" *",
                " * Returns 0; 1 if memory ran out; 2 if a value the graph checks was out of range" +
                checks + ".",
                " */", signature + ";",
                f"long long {public}_workspace_bytes({', '.join(size_args) or 'void'});", ""]
        header.append("\n".join(doc))
    title = f"{prefix}: " + ", ".join(names) + " exported by symgrad"
    body = render_module(contexts, title, c_backend, export=True)
    blas_defs = ""
    if blas:
        blas_defs = ("/* blas=True: matrix products call CBLAS (link with -lopenblas or -lcblas). */\n"
                     "#ifndef SG_HAVE_BLAS\n#define SG_HAVE_BLAS 1\n#define SG_SGEMM cblas_sgemm\n"
                     "#define SG_DGEMM cblas_dgemm\n#define SG_BLASINT int\n#endif\n")
    else:
        blas_defs = "#undef SG_HAVE_BLAS   /* matrix products are this file's own loops */\n"
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    c_path, h_path, readme = directory / f"{prefix}.c", directory / f"{prefix}.h", directory / "README"
    guard = f"{prefix.upper()}_H"
    c_path.write_text(blas_defs + body + "\n/* ==== the public entry points (see " + h_path.name +
                      ") ==== */\n#include \"" + h_path.name + "\"\n\n" + "\n".join(publics))
    h_path.write_text(
        f"/* {comment_safe(title)}\n *\n * Plain C99: arrays are C-order (row-major) and contiguous; "
        f"a scalar is a pointer to one element.\n * Build: see README. */\n"
        f"#ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n\n"
        f"#ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n"
        + "\n".join(header) + f"\n#ifdef __cplusplus\n}}\n#endif\n\n#endif /* {guard} */\n")
    link = " -lopenblas" if blas else ""
    readme.write_text(
        f"{prefix}: generated by symgrad from a compiled graph "
        f"({', '.join(names)}).\n\n"
        f"Build (plain C99, no Python needed):\n\n"
        f"    cc -O2 -c {prefix}.c && cc -O2 your_main.c {prefix}.o -lm{link}\n\n"
        f"Add -fopenmp to both commands to run the large loops on several threads. "
        f"The entry points, their arguments (order, shapes, dtypes, which are outputs) are documented in "
        f"{prefix}.h.\n")
    return {"c": c_path, "h": h_path, "readme": readme,
            "entries": [f"{prefix}_{n}" for n in names]}
