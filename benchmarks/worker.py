"""One implementation's cells, in a process of their own (started by run.py): so a crash or a
hang in one implementation (generated C that segfaults, a compile that never ends) costs one
cell, and libraries' thread pools never share a process. Prints one JSON line per event:
{"event": "start", "workload": id} before a cell and {"event": "cell", ...} after it.

    python3 benchmarks/worker.py IMPL '{"workloads": [...], "quick": false, ...settings}'"""
from __future__ import annotations

import gc
import json
import math
import os
import statistics
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import impls  # noqa: E402
import workloads as W  # noqa: E402


def emit(obj):
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def measure(call, cfg):
    """Median seconds per call. Calls shorter than cfg['batch'] are timed in batches (one sample =
    mean of a batch). At least min_runs samples, and more until min_time has passed; no new
    sample after max_time (min_runs are taken however long they last)."""
    t_end = time.perf_counter() + cfg["warmup"]
    t = time.perf_counter()
    call()
    one = time.perf_counter() - t
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        call()
        one = min(one, time.perf_counter() - t)
    inner = int(math.ceil(cfg["batch"] / max(one, 1e-9))) if one < cfg["batch"] else 1
    samples = []
    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        for _ in range(inner):
            call()
        samples.append((time.perf_counter() - t) / inner)
        spent = time.perf_counter() - start
        if len(samples) >= cfg["min_runs"] and (spent >= cfg["min_time"] or spent >= cfg["max_time"]):
            break
        if len(samples) >= 10000:
            break
    q = statistics.quantiles(samples, n=4) if len(samples) >= 2 else [samples[0]] * 3
    return {"median_s": statistics.median(samples), "min_s": min(samples), "p25_s": q[0], "p75_s": q[2],
            "samples": len(samples), "calls_per_sample": inner}


def run_cell(wl, name, cls, cfg):
    """Build, compile, first call, check, time, check again. Any failure: status 'error'."""
    cell = {"impl": name, "workload": wl.id}
    b = native = out = None
    try:
        arrays = W.make_inputs(wl)
        ref = W.reference(wl, arrays)
        b = cls(wl)
        t = time.perf_counter()
        b.compile()
        native = b.prepare(arrays)
        out = b.call(native)
        cell["first_call_s"] = time.perf_counter() - t
        if hasattr(b, "finish_background"):
            b.finish_background(native)
        value, grads = b.to_numpy(out)
        ok, err, note = W.check(wl, value, grads, ref)
        out = None
        cell.update(measure(lambda: b.call(native), cfg))
        value, grads = b.to_numpy(b.call(native))      # and once more, after all the timed calls
        ok2, err2, note2 = W.check(wl, value, grads, ref)
        cell.update(status="ok", check="PASS" if ok and ok2 else "FAIL", max_rel_err=max(err, err2),
                    check_note=note or note2, loadavg_1m=os.getloadavg()[0])
    except impls.NotApplicable as e:
        cell.update(status="n/a", error=str(e))
    except Exception as e:  # noqa: BLE001  (a peer failing on a workload must not stop the run)
        cell.update(status="error", error=f"{type(e).__name__}: {e}".splitlines()[0][:300],
                    traceback=traceback.format_exc()[-2000:])
    finally:
        del b, native, out
        gc.collect()
    return cell


def limit_threads(n):
    """Run on the first n CPUs only, and tell every library so (run.py also sets OMP_NUM_THREADS,
    OPENBLAS_NUM_THREADS and XLA's flags in this process's environment before it starts)."""
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cpus[:n])
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def main():
    name, cfg = sys.argv[1], json.loads(sys.argv[2])
    if cfg.get("with_torch") and name == "symgrad":
        try:
            import torch  # noqa: F401  (symgrad must be as fast with torch's libraries loaded)
        except ImportError:
            pass
    if name.startswith("torch"):
        import torch  # noqa: F401
    if cfg.get("threads"):
        limit_threads(cfg["threads"])
    cls = dict((n, c) for n, c, _ in impls.IMPLS)[name]
    by_id = {w.id: w for w in W.make_workloads(cfg["quick"])}
    for wid in cfg["workloads"]:
        emit({"event": "start", "workload": wid})
        emit(dict(run_cell(by_id[wid], name, cls, cfg), event="cell"))


if __name__ == "__main__":
    main()
