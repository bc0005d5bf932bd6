"""What a backend is: the few things it adds to the pipeline every backend shares (lower, the
passes, the schedule, rendering through templates), and how a compiled function is built and
called through it. `symgrad.backends.backend(name)` gives the one of each name."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from symgrad.build import Build
    from symgrad.codegen.kernel import Schedule
    from symgrad.compile import Function


def overlapping(arrays, updated):
    """The first pair (updated, other) of `arrays` whose memory overlaps, an updated one among
    them, else None. Arguments updated in place are written while the others are read, so
    they may share no memory. The arrays are contiguous: their byte ranges are sorted and
    swept once (n log n), not compared a pair at a time."""
    spans = sorted((a.__array_interface__["data"][0], a.nbytes, k) for k, a in enumerate(arrays) if a.nbytes)
    reach, owner = -1, None
    for start, nbytes, k in spans:
        if start < reach and (k in updated or owner in updated):
            return (k, owner) if k in updated else (owner, k)
        if start + nbytes > reach:
            reach, owner = start + nbytes, k
    return None


class Backend:
    """The defaults: a backend that generates nothing (the interpreter's). C and CUDA override
    the rendering facets (`module_template`, `reserved_words`, `column_sums`,
    `template_context`) and the building and calling ones."""

    name: str = ""
    compiles = True                 # False: nothing is generated, built or loaded
    uses_graph_index = False        # a graph compiled before is found without generating it
    takes_device_arrays = False     # inputs and seeds may be arrays in device memory
    one_library = False             # a compiled function's entry points share one module
    shares_code = False             # an entry point may call another's code (Function.share)
    outlines_nests = False          # a nest computed more than once is a function (codegen.outline)
    # rendering (symgrad.codegen.render.schedule_function and render_module)
    module_template: str = ""       # under templates/: the module's text
    reserved_words: frozenset[str] = frozenset()    # names user Variables must not take

    row_fusion = False              # renders `rows` kernels (codegen/kernel_passes.merge_rows)
    tiled_transposes = False        # transposing copies in blocks (kernel_passes.tile_transposes)

    def column_sums(self) -> bool:
        """Whether sums over leading dims may run in memory order (one loop nest of C's)."""
        return False

    def template_context(self, schedule: Schedule) -> dict:
        """More names for the module template, computed from the schedule."""
        return {}

    # building and calling (symgrad.compile.Function)
    def require(self) -> None:
        """Raises CompileError when this machine cannot build for the backend at all."""

    def prepare(self, outputs=None) -> None:
        """Called before a module is generated: start, in the background, what its build will
        need (so that it overlaps code generation). `outputs`: the graph's, when known."""

    def linked_objects(self, kernels) -> dict:
        """{(kind, element type): object file} of the code compiled once (the product helpers,
        the register tiles: symgrad.backends.objects) that a module of `kernels` links in
        rather than compiles itself."""
        return {}

    def start_build(self, source: str, symbol: str, schedule: Schedule) -> Build:
        """The build (started in the background) of one generated module."""
        raise NotImplementedError(f"the {self.name} backend builds nothing")

    def run(self, fn: Function, arrays: list) -> list:
        """Call `fn` with arrays already converted; returns the list of outputs."""
        raise NotImplementedError

    def caller(self, fn: Function) -> Callable:
        """What `fn(*values)` calls: the fastest way this backend has, looked up once."""
        return fn._general_call

    def direct_caller(self, fn: Function, single: bool) -> Callable | None:
        """A caller returning `fn`'s outputs as `sg.compile`'s function does (the array of a
        single output, else the list) straight from the arrays, or None."""
        return None

    def value_and_grad_caller(self, fn: Function, n_values: int, single: bool,
                              seeded: Callable | None = None) -> Callable | None:
        """A caller returning `(value, gradients)` (or the gradients alone when `n_values` is 0)
        straight from the arrays, or None: the compiled function's entries then take the general
        path."""
        return None

    def __repr__(self):
        return f"<symgrad backend {self.name!r}>"
