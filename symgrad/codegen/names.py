"""User names in generated code, sanitised in one place: C identifiers (`NameTable`) and text
inside C comments (`comment_name`, `comment_safe`). No user string reaches the source except
through these. This is the one module that uses regular expressions."""
from __future__ import annotations

import keyword
import re

from symgrad.ops.primitives import libm_calls

# C's words, our locals, and the libm functions the op registry's C expressions call.
_C_WORDS = set("""auto break case char const continue default do double else enum extern float for goto
if inline int long register restrict return short signed sizeof static struct switch typedef union
unsigned void volatile while bool true false acc best best_at seen scratch args main NULL
INFINITY NAN int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t size_t ptrdiff_t
malloc free abs""".split()) | set(keyword.kwlist) | set(libm_calls())


def comment_name(name) -> str:
    """A user's name as generated code shows it, in comments too: only [A-Za-z0-9_], as the C
    identifiers made from it, so no name can end a comment or smuggle text into the source."""
    return re.sub(r"[^0-9A-Za-z_]", "_", str(name))[:48] or "_"


class NameTable:
    """C identifiers derived from the user's names: sanitised (no user string reaches the C
    text except as [A-Za-z0-9_]), never a C word or one of our locals, never repeated."""

    def __init__(self):
        self.used = set()
        self._next = {}         # base -> the next suffix to try (a name used n times: no n^2)

    def get(self, name: str) -> str:
        base = re.sub(r"[^0-9A-Za-z_]", "_", str(name))[:48] or "v"
        if base[0].isdigit() or base in _C_WORDS or re.fullmatch(r"i\d+|ib\d+|v\d+(_\d+)?|acc\d+", base) \
                or base.startswith("sg_") or base.startswith("__"):
            base = "v_" + base
        name, k = base, self._next.get(base, 2)
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self._next[base] = k
        self.used.add(name)
        return name


def comment_safe(text) -> str:
    """Text for inside a C comment: one line, and nothing that could end the comment (`*/`),
    open another, or splice lines (a trigraph `??/` or a backslash)."""
    text = re.sub(r"[^\x20-\x7e]", "?", str(text))
    return text.replace("*/", "*_/").replace("/*", "/_*").replace("??", "?_?").replace("\\", "/")
