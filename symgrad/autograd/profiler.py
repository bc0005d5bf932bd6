"""`sg.autograd.profiler`: PyTorch's profiler names, so that programs that wrap a loop in
`with profiler.profile() as prof:` run. symgrad records no per-op events (the eager ops run
in numpy, backward as one compiled call); it measures the block's wall time, and
`key_averages().table()` prints that one row."""
from __future__ import annotations

import time


class _Averages(list):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def table(self, sort_by=None, row_limit=100, **kwargs) -> str:
        ms = self.seconds * 1e3
        rule = "-" * 60
        return (f"{rule}\n{'Name':<40}{'Wall time total':>20}\n{rule}\n"
                f"{'profiled block (symgrad records no per-op events)':<40}{ms:>17.3f}ms\n{rule}\n"
                f"Self CPU time total: {ms:.3f}ms\n")


class profile:
    """`with profile(...) as prof:` (any of PyTorch's keywords accepted): `prof.key_averages()`
    and `prof.table()` describe the block's total wall time."""

    def __init__(self, enabled=True, *, use_cuda=False, use_device=None, record_shapes=False,
                 with_flops=False, profile_memory=False, with_stack=False, with_modules=False,
                 use_kineto=False, use_cpu=True, experimental_config=None, acc_events=False,
                 custom_trace_id_callback=None):
        self.enabled = enabled
        self.seconds = 0.0

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._start

    def key_averages(self, group_by_input_shape=False, group_by_stack_n=0, group_by_overload_name=False):
        return _Averages(self.seconds)

    def table(self, sort_by=None, row_limit=100, **kwargs) -> str:
        return self.key_averages().table(sort_by=sort_by, row_limit=row_limit)

    def __str__(self):
        return self.table()


class record_function:
    """A named range inside a profiled block (a context manager and decorator; recorded as nothing)."""

    def __init__(self, name: str, args=None):
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def __call__(self, fn):
        return fn
