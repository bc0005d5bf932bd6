"""The suite's GPU mode: W1 (N = 1e8), W2, W3 and W4 on symgrad's CUDA backend, PyTorch CUDA
eager and torch.compile, next to the device's measured copy bandwidth.

    python3 benchmarks/gpu.py [--json out.json] [--only W1,W3] [--skip torch.compile] [--n 1e8]
    python3 benchmarks/run.py --gpu ...        (the same)

It needs an NVIDIA GPU, nvcc and a CUDA build of PyTorch (the peers, and the device memory
symgrad's functions take in place through __cuda_array_interface__). Without them it says what
is missing and exits with status 0, so it can sit in scripts that also run on CPU machines.

Every implementation gets the same float32 inputs already in device memory and computes one
value_and_grad (the forward value and the gradient of every float input) per call; a time is
the median over repeated batches of calls, each batch ended by a device synchronisation
(symgrad's calls return when their kernels are done). Results are checked against the float64
numpy reference. W1's achieved bandwidth is its floor (bytes it must move) over its time, as a
fraction of the copy bandwidth (device-to-device cudaMemcpy of 1 GiB, read plus write)."""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
if ROOT not in sys.path:
    sys.path.append(ROOT)

import impls  # noqa: E402
import workloads as W  # noqa: E402

REPEATS, MIN_BATCH_S = 15, 0.05


def missing() -> str | None:
    """Why the GPU mode cannot run here, or None."""
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed (pip install torch, a CUDA build)"
    if not torch.cuda.is_available():
        return f"PyTorch {torch.__version__} sees no CUDA device (a CPU build, or no GPU/driver)"
    import symgrad.cuda as sgc
    if not sgc.have_nvcc():
        return "nvcc is not installed: symgrad's CUDA backend cannot compile"
    if not sgc.device_available():
        return "symgrad's CUDA runtime module sees no device"
    return None


def timed(call, sync) -> dict:
    """Median seconds per call over REPEATS batches (a batch lasts at least MIN_BATCH_S)."""
    for _ in range(3):
        call()
    sync()
    t = time.perf_counter()
    call()
    sync()
    one = max(time.perf_counter() - t, 1e-7)
    inner = max(1, int(MIN_BATCH_S / one))
    samples = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        for _ in range(inner):
            call()
        sync()
        samples.append((time.perf_counter() - t) / inner)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "calls_per_sample": inner}


def copy_bandwidth(torch) -> float:
    """Bytes per second of a device-to-device copy of 1 GiB (counting its read and its write)."""
    n = 1 << 28
    src = torch.ones(n, device="cuda", dtype=torch.float32)
    dst = torch.empty_like(src)
    t = timed(lambda: dst.copy_(src), torch.cuda.synchronize)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * 4 * n / t["median_s"]


class SymgradCuda(impls.Symgrad):
    name = "symgrad"

    def compile(self):
        self.fn = self.sg.compile(self.inputs, self.loss, backend="cuda")

    def prepare(self, arrays):
        import torch
        return [torch.from_numpy(a).cuda() for a in arrays]     # used in place by symgrad

    def call(self, native):
        return self.fn.value_and_grad(*native)

    def to_numpy(self, out):
        value, grads = out
        return float(value.numpy()), [g.numpy() for g in grads]


class TorchCuda(impls.Torch):
    name = "torch"

    def prepare(self, arrays):
        out = [self.torch.from_numpy(a).cuda() for a in arrays]
        return [t.requires_grad_(True) if k in self.gi else t for k, t in enumerate(out)]

    def to_numpy(self, out):
        loss, grads = out
        return float(loss.cpu()), [g.cpu().numpy() for g in grads]


class TorchCompileCuda(TorchCuda):
    name = "torch.compile"

    def compile(self):
        self.f = self.torch.compile(impls._torch_loss(self.wl.kind), dynamic=False)


IMPLS = [SymgradCuda, TorchCuda, TorchCompileCuda]


def workloads(n, only):
    out = []
    for wl in W.make_workloads(quick=True):
        if wl.group == "W1":
            short = f"{n:.0e}".replace("+0", "")
            wl = W.Workload(f"W1/{short}", "W1", "w1", f"sum(tanh(x*w+b)**2 + exp(-x)*0.5), N={short}",
                            [W.Arg(a.name, (n,)) for a in wl.args], "bytes", 6 * 4 * n, wl.floor_note)
        if wl.group in ("W1", "W2", "W3", "W4") and (not only or wl.group in only):
            out.append(wl)
    return out


def run_cell(cls, wl, arrays, ref, torch) -> dict:
    cell = {"impl": cls.name, "workload": wl.id}
    try:
        b = cls(wl)
        t = time.perf_counter()
        b.compile()
        native = b.prepare(arrays)
        out = b.call(native)
        torch.cuda.synchronize()
        cell["first_call_s"] = time.perf_counter() - t
        ok, err, note = W.check(wl, *b.to_numpy(out), ref)
        del out
        cell.update(timed(lambda: b.call(native), torch.cuda.synchronize))
        cell.update(status="ok", check="PASS" if ok else "FAIL", max_rel_err=err, check_note=note)
    except Exception as e:  # noqa: BLE001  (one peer failing must not stop the run)
        cell.update(status="error", error=f"{type(e).__name__}: {e}".splitlines()[0][:300])
    finally:
        b = native = out = None
        torch.cuda.empty_cache()
    return cell


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=os.path.join(HERE, "results", "gpu.json"), help="where to write results")
    ap.add_argument("--only", default="", help="comma-separated workload groups: W1,W2,W3,W4")
    ap.add_argument("--skip", default="", help="comma-separated implementations to leave out")
    ap.add_argument("--n", type=float, default=1e8, help="W1's N (default 1e8)")
    args = ap.parse_args(argv)
    why = missing()
    if why:
        print(f"GPU benchmarks skipped: {why}")
        return 0
    import torch
    import symgrad
    device = torch.cuda.get_device_name()
    print(f"device: {device}; torch {torch.__version__}; symgrad {symgrad.__version__}; "
          f"python {platform.python_version()}", flush=True)
    bw = copy_bandwidth(torch)
    print(f"device-to-device copy bandwidth: {bw / 1e9:.0f} GB/s", flush=True)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    cells = []
    for wl in workloads(int(args.n), only):
        arrays = W.make_inputs(wl)
        ref = W.reference(wl, arrays)
        for cls in IMPLS:
            if cls.name in skip:
                continue
            c = run_cell(cls, wl, arrays, ref, torch)
            cells.append(c)
            shown = f"{c['median_s'] * 1e3:9.3f} ms  {c['check']}" if c["status"] == "ok" else c["error"]
            print(f"  {wl.id:8} {cls.name:14} {shown}", flush=True)
    report(cells, bw, workloads(int(args.n), only))
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"device": device, "copy_bandwidth_Bps": bw, "torch": torch.__version__, "cells": cells}, f,
                  indent=1)
    print(f"results: {args.json}")
    return 0


def report(cells, bw, wls):
    """A markdown table: times, and each peer's time over symgrad's (>1: symgrad is faster)."""
    at = {(c["workload"], c["impl"]): c for c in cells}
    names = [cls.name for cls in IMPLS if any(c["impl"] == cls.name for c in cells)]
    print("\n| workload | " + " | ".join(names) + " | peer / symgrad | floor |")
    print("|---" * (len(names) + 3) + "|")
    for wl in wls:
        row, mine = [], at.get((wl.id, "symgrad"))
        for n in names:
            c = at.get((wl.id, n))
            row.append("-" if c is None else c["error"][:40] if c["status"] != "ok" else
                       f"{c['median_s'] * 1e3:.3f} ms" + ("" if c["check"] == "PASS" else " FAIL"))
        ratios = []
        for n in names[1:]:
            c = at.get((wl.id, n))
            if mine and c and mine["status"] == c["status"] == "ok":
                ratios.append(f"{n} {c['median_s'] / mine['median_s']:.2f}x")
        floor = "-"
        if wl.floor_kind == "bytes" and mine and mine["status"] == "ok":
            achieved = wl.floor_amount / mine["median_s"]
            floor = f"{achieved / 1e9:.0f} GB/s = {100 * achieved / bw:.0f}% of copy"
        print(f"| {wl.id} | " + " | ".join(row) + f" | {', '.join(ratios) or '-'} | {floor} |")


if __name__ == "__main__":
    sys.exit(main())
