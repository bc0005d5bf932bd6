"""The passes over the lowered graph, in the order they run.

Each rewrite is one identity, exact in IEEE arithmetic (signed zeros, inf and NaN included;
nothing reassociated), so that switching any of them off changes no bit of any result (the
kernel passes marked "not exact" below, and two in README's list, are the exceptions).

    phase         rewrite                 what it does
    lower         (always runs)           Variables copied into Nodes, equal nodes shared (CSE)
    fold          fold_constants          an elementwise op of literals is a literal
    canonicalize  literal_operands        op(broadcast(c), x) is op(c, x)
                  stop_gradient           stop_gradient(x) is x
                  add_negative_zero       x + (-0.0) is x (x + 0.0 is not)
                  sub_zero                x - 0.0 is x
                  mul_one                 x * 1 is x
                  div_one                 x / 1 is x
                  where_known_condition   where(True, a, b) is a
                  pow_one                 x ** 1 is x
                  noop_reshape            reshape(x) to x's own shape is x
                  reshape_of_reshape      reshape(reshape(x)) is reshape(x)
                  noop_broadcast          broadcast(x) to x's own shape is x
                  permute_of_permute      permute(permute(x)) is one permute of x, or x
    specialize    pow_two                 x ** 2 is x * x
                  pow_half                x ** 0.5 is sqrt(x + 0.0), -inf giving +inf
                  matmul_literal_to_sum   c @ B is sum(c * B) broadcast, for a literal c
                  reduce_in_memory_order  reduce(permute(x)) is permute(reduce(x))
                  permute_of_matmul       (a @ b).T is b.T @ a.T, where nothing else reads a @ b
                  matmul_batch_as_rows    a[..., m, k] @ b[k, n] is one product of a's rows stacked
                  sum_of_batch_products   sum over i of a[i].T @ g[i] is one product, the batch along k
                  sum_of_products         a1.T @ g1 + a2.T @ g2 is [a1; a2].T @ [g1; g2], one product

    then, over the kernels (codegen/schedule.py):
    schedule      (always runs)           one loop nest per stored node, bodies as kernel IR
    merge_nests                           nests over the same loops merged into one pass
                                          (also off with SYMGRAD_FUSE_NESTS=0)
    merge_rows                            nests over the same outer loops, one reducing, run
                                          in turn for each row, rows of 64 or more (row
                                          fusion; C backend)
    merge_parts                           a rows kernel's parts that do not wait on each
                                          other's row results run in one loop (C backend)
    drop_copies                           locals that only copy another local removed
    reciprocals                           a / b, b unchanged by the innermost loop, as
                                          a * (1 / b) (not exact: the last bit)
    tile_transposes                       a transposing copy run in blocks (C)
    parallelise                           the loops OpenMP threads share marked (nests long
                                          enough to pay for threads)
    vectorise                             sums over one inner loop marked for vector lanes
    float_row_sums                        vectorised row sums of up to 4096 floats add up in
                                          float (not exact)
    float_column_sums                     a rows kernel's column sums over up to 4096 rows
                                          add up in float (not exact)
    stream_stores                         rows of outputs of 16 MB or more written with
                                          non-temporal stores, in chunks
    prefetch_rows                         a rows kernel's costliest part fetches the next row
                                          of the large inputs a later part reads first

`algebra` names canonicalize and specialize together (the single pass they once were).

How they run (pipeline.run): the graph's nodes in topological order, each, once its inputs
are rewritten, through every enabled rewrite in the order above, over and over until none
changes it. So the phases' order is the order in which rewrites are tried on a node.

Switching off: `SYMGRAD_DISABLE_PASSES=fold,algebra`, or any phase or rewrite by its name
(`SYMGRAD_DISABLE_PASSES=pow_half`); an unknown name is an error that lists the known ones.

Printing: `sg.debugprint(fn, after="fold")` prints the lowered graph as the pipeline leaves
it when only the passes up to and including `fold` run (`after="lower"`: none of them);
`SYMGRAD_PRINT_AFTER=fold,canonicalize` prints those graphs to stderr as each function is
compiled. After a kernel pass (`after="merge_nests"`), the kernels are printed instead.
"""
from symgrad.passes.pipeline import (GROUPS, KERNEL_PASSES, LOWER, PHASES, SCHEDULE, configured, expand,
                                     is_kernel_pass, kernel_passes, printed_after, rewrites, run, select)

__all__ = ["GROUPS", "KERNEL_PASSES", "LOWER", "PHASES", "SCHEDULE", "configured", "expand", "is_kernel_pass",
           "kernel_passes", "printed_after", "rewrites", "run", "select"]
