"""The pipeline: the phases in their order, which of their rewrites run (by name, from
SYMGRAD_DISABLE_PASSES, or up to a pass for printing), and the driver that applies them."""
from __future__ import annotations

from dataclasses import dataclass

from symgrad import config
from symgrad.graph import toposort
from symgrad.passes.canonicalize import REWRITES as CANONICALIZE
from symgrad.passes.fold import REWRITES as FOLD
from symgrad.passes.rewrite import LEAVES, Rewrite, Rewriting
from symgrad.passes.specialize import REWRITES as SPECIALIZE

LOWER = "lower"        # the first phase (codegen/ir.py: copy and CSE); it always runs


@dataclass(frozen=True)
class Phase:
    name: str
    rewrites: tuple


PHASES = (Phase("fold", FOLD), Phase("canonicalize", CANONICALIZE), Phase("specialize", SPECIALIZE))

# Names that stand for several phases: `algebra` was the one pass that held both.
GROUPS = {"algebra": ("canonicalize", "specialize")}

# After the graph's phases, the passes over the kernels (codegen/schedule.py), in order:
# `schedule` makes one kernel per stored node (always runs), `merge_nests` merges kernels over
# the same loops into one nest, `merge_rows` runs nests over the same outer loops row by row
# (row fusion), `merge_parts` runs a rows kernel's parts that do not wait on each other's row
# results in one loop, `drop_copies` removes locals that only copy another, `reciprocals` divides by a
# loop-invariant divisor as a product with its reciprocal (not exact), `tile_transposes` runs a
# transposing copy in blocks (C), `parallelise` marks the loops threads share, `vectorise` the
# sums that may use vector lanes, `float_row_sums` adds short vectorised row sums up in float (not
# exact), `float_column_sums` a rows kernel's column sums over a few thousand rows (not exact),
# `stream_stores` writes rows of large outputs past the cache,
# `prefetch_rows` has a rows kernel's costliest part fetch the next row of its large inputs.
SCHEDULE = "schedule"
KERNEL_PASSES = ("merge_nests", "merge_rows", "merge_parts", "drop_copies", "reciprocals", "tile_transposes",
                 "parallelise", "vectorise", "float_row_sums", "float_column_sums", "stream_stores",
                 "prefetch_rows")


def rewrites() -> list[Rewrite]:
    """Every rewrite, in the order they are tried."""
    return [r for phase in PHASES for r in phase.rewrites]


def _known() -> str:
    phases = ", ".join(p.name for p in PHASES)
    groups = ", ".join(f"{g} ({' and '.join(ps)})" for g, ps in GROUPS.items())
    return (f"the phases {phases}; {groups}; the rewrites {', '.join(r.name for r in rewrites())}; "
            f"then over the kernels {SCHEDULE} (always runs), {', '.join(KERNEL_PASSES)}")


def expand(name: str, where: str) -> list[Rewrite]:
    """The rewrites a pass name stands for: one rewrite, a phase's, or a group's. `where`
    says who named it, for the error."""
    phases = {p.name: p for p in PHASES}
    if name in KERNEL_PASSES or name == SCHEDULE:
        return []                      # no graph rewrite: a pass over the kernels
    if name in GROUPS:
        return [r for p in GROUPS[name] for r in phases[p].rewrites]
    if name in phases:
        return list(phases[name].rewrites)
    found = [r for r in rewrites() if r.name == name]
    if not found:
        raise ValueError(f"{where}: no pass is called {name!r}; the passes are {LOWER} (always runs), "
                         f"{_known()}")
    return found


def select(disabled=(), upto: str | None = None, where: str = "SYMGRAD_DISABLE_PASSES") -> list[Rewrite]:
    """The rewrites that run: all but the `disabled` ones, and with `upto`, only those up to
    and including that pass (a rewrite, phase or group; `lower`: none)."""
    off = {r.name for name in disabled for r in expand(name, where)}
    chosen = rewrites()
    if upto == LOWER:
        chosen = []
    elif upto is not None and not is_kernel_pass(upto):
        last = max(chosen.index(r) for r in expand(upto, "after"))
        chosen = chosen[:last + 1]
    return [r for r in chosen if r.name not in off]


def is_kernel_pass(name: str) -> bool:
    return name == SCHEDULE or name in KERNEL_PASSES


def kernel_passes(upto: str | None = None) -> list[str]:
    """The kernel passes that run under SYMGRAD_DISABLE_PASSES; with `upto`, only those up to
    and including it (none when `upto` is a pass over the graph)."""
    off = set(config.disabled_passes())
    for name in off:
        expand(name, "SYMGRAD_DISABLE_PASSES")          # an unknown name is an error
    chosen = list(KERNEL_PASSES)
    if upto is not None:
        chosen = chosen[:KERNEL_PASSES.index(upto) + 1] if upto in KERNEL_PASSES else []
    return [p for p in chosen if p not in off]


def configured(upto: str | None = None) -> list[Rewrite]:
    """The rewrites that run under the current SYMGRAD_DISABLE_PASSES."""
    return select(config.disabled_passes(), upto)


def printed_after() -> tuple[str, ...]:
    """SYMGRAD_PRINT_AFTER's passes, each checked to be one."""
    names = config.print_after()
    for name in names:
        if name != LOWER:
            expand(name, "SYMGRAD_PRINT_AFTER")
    return names


def run(graph, make, chosen: list[Rewrite]):
    """Rewrite `graph` in place: nodes in topological order, each (its inputs rewritten first)
    put through the chosen rewrites for its op, in order, again and again until none changes
    it. A new node a rewrite builds is not itself rewritten further, except as the result.
    `users` counts each node's readers in the graph as given (an output counts as one); a
    node that stands for a rewritten one inherits its count (an over-count at worst)."""
    if not chosen:
        return graph
    order = toposort(graph.outputs)
    users = {}
    for n in order:
        for i in {id(i) for i in n.inputs}:
            users[i] = users.get(i, 0) + 1
    for o in graph.outputs:
        users[id(o)] = users.get(id(o), 0) + 1
    ctx = Rewriting(make, frozenset(r.name for r in chosen), lambda node: users.get(id(node)))
    by_op = {}

    def rewrites_of(op):
        if op not in by_op:
            by_op[op] = [r for r in chosen if r.ops is None or op in r.ops]
        return by_op[op]

    new = {}
    for n in order:
        if n.op in LEAVES:
            new[id(n)] = n
            continue
        ins = [new[id(i)] for i in n.inputs]
        cur = n if all(a is c for a, c in zip(ins, n.inputs)) else \
            make(n.op, ins, n.attrs, n.shape, n.dtype, name=n.name, origin=n.origin)
        _inherit(users, n, cur)
        result = _to_fixed_point(cur, ctx, rewrites_of)
        if result is not cur:
            _inherit(users, n, result)
        cur = result
        if cur.name is None and n.name:
            cur.name = n.name
        new[id(n)] = cur
    graph.outputs = [new[id(o)] for o in graph.outputs]
    return graph


def _inherit(users, old, node):
    """`node` stands for `old` from now on: its readers count as `node`'s."""
    if node is not old:
        users[id(node)] = users.get(id(node), 0) + users.get(id(old), 0)


def _to_fixed_point(node, ctx, rewrites_of):
    """`node` rewritten until a whole sweep of its op's rewrites leaves it as it is."""
    while True:
        before = node
        for r in rewrites_of(node.op):
            if node.op in LEAVES:
                break
            if r.ops is None or node.op in r.ops:      # a rewrite earlier in the sweep changed the op
                node = r(node, ctx) or node
        if node is before:
            return node
