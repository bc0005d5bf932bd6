"""Loop nests that a module computes more than once over other buffers (a layer of a deep MLP
and its gradient, a step of an unrolled RNN, a stretch of a long elementwise chain, the
forward part that forward and value_and_grad share), written once as a static function of
those buffers and called where each was: the C compiler, whose run is most of a cold
compile, then compiles each distinct nest once, and code generation stays linear in the
number of distinct nests rather than of nests.

Two nests are the same when their code is, with their buffers, locals and accumulators named
in the order the nest uses them (the rendering itself is the canonical form: nothing is read
back from it but its identity). A nest that calls back into its function (a range check that
sets the function's status) or reads the sizes of symbolic dimensions stays where it is."""
from __future__ import annotations

from symgrad.codegen import kernel as K
from symgrad.codegen.kernel_passes import written_buffers

MIN_USES = 2            # a nest computed this many times is outlined
MAX_PARAMETERS = 127    # C guarantees a function this many parameters


OUTLINED_KINDS = ("nest", "colsum")


def _expressions(k):
    e = k.extra
    return [let.expr for let in k.lets] + [x for x in (k.value, k.out_index) if k.kind == "colsum"] + \
        [x for st in e.get("stores", ()) for x in (st["index"], st["value"])] + \
        [x for a in e.get("accs", ()) for x in (a["init"], a["value"], a["index"])]


def _buffers(k) -> list:
    """The buffers nest `k` uses, in the order it first uses them."""
    seen, out = set(), []
    for ex in _expressions(k):
        for sub in K.walk(ex):
            if isinstance(sub, K.Load) and id(sub.buf) not in seen:
                seen.add(id(sub.buf))
                out.append(sub.buf)
    for b in written_buffers(k):
        if id(b) not in seen:
            seen.add(id(b))
            out.append(b)
    return out


def _calls_back(k) -> bool:
    return any(isinstance(sub, K.Call) and sub.op == "check_range" for sub in K.walk(*_expressions(k)))


def _canonical(k, buffers, render) -> str:
    """`k`'s code with its buffers named b0, b1, ..., its locals v0, v1, ... and its
    accumulators acc0, acc1, ... in order, and no comments (those stay at the call)."""
    e = k.extra
    accs = e.get("accs", ())
    saved = ([b.name for b in buffers], [let.name for let in k.lets], [a["name"] for a in accs],
             e.get("comments"), k.comment)
    try:
        for j, b in enumerate(buffers):
            b.name = f"b{j}"
        for j, let in enumerate(k.lets):
            let.name = f"v{j}"
        for j, a in enumerate(accs):
            a["name"] = f"acc{j}"
        e["comments"], k.comment = [], ""
        return str(render(k))
    finally:
        for b, name in zip(buffers, saved[0]):
            b.name = name
        for let, name in zip(k.lets, saved[1]):
            let.name = name
        for a, name in zip(accs, saved[2]):
            a["name"] = name
        e["comments"], k.comment = saved[3], saved[4]


def outline(functions: list, render) -> list:
    """The nests of `functions` (render contexts) to write once: returns the static functions,
    each {name, params, body, uses, first}, and gives each nest that calls one its call,
    `extra["outlined"]` = {fn, args, comments}. `render(kernel)` is the C of a nest."""
    found, order = {}, []
    for f in functions:
        if f.get("shares") or f["dims"]:
            continue
        for k in f["kernels_list"]:
            k.extra.pop("outlined", None)
            if k.kind not in OUTLINED_KINDS or _calls_back(k):
                continue
            buffers = _buffers(k)
            if len(buffers) > MAX_PARAMETERS:
                continue
            written = {id(b) for b in written_buffers(k)}
            params = tuple((b.ctype, id(b) not in written) for b in buffers)
            key = (_canonical(k, buffers, render), params)
            if key not in found:
                found[key] = []
                order.append(key)
            found[key].append((k, buffers))
    statics = []
    for key in order:
        uses = found[key]
        if len(uses) < MIN_USES:
            continue
        name = f"sg_nest_{len(statics) + 1}"
        body, params = key
        statics.append({"name": name, "body": body, "uses": len(uses),
                        "first": (uses[0][0].extra.get("comments") or [uses[0][0].comment])[0],
                        "params": [{"ctype": ct, "const": const, "name": f"b{j}"}
                                   for j, (ct, const) in enumerate(params)]})
        for k, buffers in uses:
            k.extra["outlined"] = {"fn": name, "args": [b.name for b in buffers],
                                   "comments": k.extra.get("comments") or [k.comment]}
    return statics
