"""Nested tuples, lists and dicts of arrays ("pytrees", as JAX calls them): the arguments and
results of the function transforms and of sg.jit. `flatten` gives the leaves and a hashable
description of the nesting (`Tree`); `unflatten` puts new leaves back into that nesting."""
from __future__ import annotations

from typing import NamedTuple


class Tree(NamedTuple):
    kind: str              # "leaf", "tuple", "list" or "dict"
    keys: tuple = ()       # a dict's keys, in order
    children: tuple = ()   # the Trees of the items

    @property
    def n_leaves(self) -> int:
        return 1 if self.kind == "leaf" else sum(c.n_leaves for c in self.children)


LEAF = Tree("leaf")


def flatten(tree) -> tuple[list, Tree]:
    leaves: list = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree, leaves) -> Tree:
    if isinstance(tree, dict):
        keys = tuple(tree)
        return Tree("dict", keys, tuple(_flatten(tree[k], leaves) for k in keys))
    if type(tree) in (tuple, list):
        return Tree(type(tree).__name__, (), tuple(_flatten(t, leaves) for t in tree))
    leaves.append(tree)
    return LEAF


def unflatten(tree: Tree, leaves):
    return _unflatten(tree, iter(leaves))


def _unflatten(tree: Tree, it):
    if tree.kind == "leaf":
        return next(it)
    items = [_unflatten(c, it) for c in tree.children]
    if tree.kind == "dict":
        return dict(zip(tree.keys, items))
    return tuple(items) if tree.kind == "tuple" else items


def broadcast_prefix(prefix, tree: Tree, what: str) -> list:
    """`prefix` (an int/None, or a nesting of them that is a prefix of `tree`, as vmap's
    in_dims) given for each leaf of `tree`."""
    if prefix is None or isinstance(prefix, int):
        return [prefix] * tree.n_leaves
    if tree.kind == "leaf":
        raise ValueError(f"{what}: {prefix!r} is nested deeper than the value it describes")
    if tree.kind == "dict":
        if not isinstance(prefix, dict) or set(prefix) != set(tree.keys):
            raise ValueError(f"{what}: {prefix!r} does not match a dict with keys {list(tree.keys)}")
        items = [prefix[k] for k in tree.keys]
    else:
        if not isinstance(prefix, (tuple, list)) or len(prefix) != len(tree.children):
            raise ValueError(f"{what}: {prefix!r} does not match a {tree.kind} of {len(tree.children)} items")
        items = list(prefix)
    out = []
    for p, c in zip(items, tree.children):
        out.extend(broadcast_prefix(p, c, what))
    return out
