"""symgrad's benchmark suite: every workload on symgrad and on each installed peer (numpy by hand,
PyTorch eager, torch.compile, JAX jit(value_and_grad), PyTensor's C backend), checked against a
float64 numpy reference, next to this machine's measured limits (memory bandwidth, GEMM rate).

    python3 benchmarks/run.py [--quick] [--json out.json] [--only W1,W5,compile] [--skip jax,...]

Run it with symgrad importable (PYTHONPATH=. from the repository root, or symgrad installed).
Times are medians of repeated runs of one value_and_grad (forward plus the gradients of every
float input); a ratio is peer time / symgrad time, so >1 means symgrad is faster."""
from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
if ROOT not in sys.path:
    sys.path.append(ROOT)   # symgrad from this checkout when it is not installed


import impls  # noqa: E402
import machine  # noqa: E402
import workloads as W  # noqa: E402

# (warm-up seconds, min runs, min seconds, max seconds per measurement, repeats of compile children)
SETTINGS = {"full": dict(warmup=0.3, min_runs=7, min_time=1.0, max_time=5.0, batch=2e-3, compile_reps=5,
                         triad_reps=10, gemm_reps=5),
            "quick": dict(warmup=0.05, min_runs=3, min_time=0.15, max_time=1.0, batch=1e-3, compile_reps=1,
                          triad_reps=5, gemm_reps=3)}


def log(*a):
    print(*a, flush=True)


# --- worker processes ------------------------------------------------------------------------------

def spawn(cmd, env=None):
    """A child in its own session (so it and whatever it starts can be killed together), its
    stderr in a temporary file."""
    err = tempfile.TemporaryFile(mode="w+")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, start_new_session=True)
    return p, err


def kill(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    p.wait()


def stderr_tail(err, n=1):
    err.seek(0)
    lines = [ln for ln in err.read().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[:300] or "no output"


def lines_until(p, deadline):
    """Yield stdout lines of p as they come; yields None if the deadline (a callable returning
    a perf_counter time) passes first. Ends at EOF."""
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    buf = b""
    while True:
        left = deadline() - time.perf_counter()
        if left <= 0 or not sel.select(timeout=left):
            yield None
            continue
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line.decode(errors="replace")


def run_impl(name, wls, cfg, env, on_cell):
    """All of one implementation's workloads in worker processes; a cell that crashes its worker
    or runs past cfg['cell_timeout'] becomes an error and a new worker takes the rest."""
    remaining = [w.id for w in wls]
    cells = {}
    while remaining:
        wcfg = {k: v for k, v in cfg.items() if k != "skip"}
        wcfg.update(workloads=remaining, quick=cfg["quick"])
        p, err = spawn([sys.executable, os.path.join(HERE, "worker.py"), name, json.dumps(wcfg)], env)
        current, started = None, time.perf_counter()
        failure = None
        for line in lines_until(p, lambda: started + cfg["cell_timeout"]):
            if line is None:
                failure = f"timed out after {cfg['cell_timeout']:.3g} s (worker killed)"
                kill(p)
                break
            if not line.startswith("{"):
                continue
            ev = json.loads(line)
            if ev["event"] == "start":
                current, started = ev["workload"], time.perf_counter()
            elif ev["event"] == "cell":
                ev.pop("event")
                cells[ev["workload"]] = ev
                remaining.remove(ev["workload"])
                on_cell(ev)
                current = None
        if failure is None:
            code = p.wait()
            if remaining:
                failure = f"worker exited with code {code}" + (
                    f" ({signal.Signals(-code).name})" if code < 0 else "") + f": {stderr_tail(err)}"
        err.close()
        if failure and remaining:
            wid = current or remaining[0]
            cell = {"impl": name, "workload": wid, "status": "error", "error": failure}
            cells[wid] = cell
            remaining.remove(wid)
            on_cell(cell)
    return cells


# --- compile times, in fresh processes -------------------------------------------------------------

def child_env(extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update(extra or {})
    return env


def child(impl, env_extra, timeout):
    """compile_child.py in a fresh process; its own timing of compile() + first call."""
    t = time.perf_counter()
    p, err = spawn([sys.executable, os.path.join(HERE, "compile_child.py"), impl], child_env(env_extra))
    lines = []
    for line in lines_until(p, lambda: t + timeout):
        if line is None:
            kill(p)
            err.close()
            return {"status": "error", "error": f"timed out after {timeout:.0f} s (killed)"}
        lines.append(line)
    code = p.wait()
    wall = time.perf_counter() - t
    lines = [ln for ln in lines if ln.startswith("{")]
    if code != 0 or not lines:
        msg = {"status": "error", "error": f"exit {code}: {stderr_tail(err)}"}
        err.close()
        return msg
    err.close()
    r = json.loads(lines[-1])
    r.update(status="ok", process_wall_s=wall, check="PASS" if r.pop("ok") else "FAIL")
    return r


def compile_times(available, cfg, tmp):
    """W2 compile + first value_and_grad, timed inside fresh processes."""
    names = {n for n, c, _ in available if c is not None}
    reps = cfg["compile_reps"]
    res = {}

    def series(key, impl, envs):
        runs = [child(impl, e, cfg["cell_timeout"]) for e in envs]
        good = [r for r in runs if r["status"] == "ok"]
        if not good:
            res[key] = runs[0]
        else:
            ms = [r["compile_plus_first_call_ms"] for r in good]
            med = {k: statistics.median(r[k] for r in good)
                   for k in ("compile_ms", "first_call_ms", "import_and_graph_ms")}
            res[key] = dict(good[-1], **med, median_ms=statistics.median(ms), runs_ms=ms,
                            check="PASS" if all(r["check"] == "PASS" for r in good) else "FAIL")
        r = res[key]
        log(f"  {key:<40} " + (f"{r['median_ms']:9.0f} ms  (runs: {', '.join(f'{m:.0f}' for m in r['runs_ms'])})"
                               f"  {r['check']}" if r["status"] == "ok" else f"error: {r['error']}"))

    if "symgrad" in names and "symgrad" not in cfg["skip"]:
        dirs = [tempfile.mkdtemp(prefix="sg-cold-", dir=tmp) for _ in range(reps)]
        series("symgrad cold (empty build dir)", "symgrad", [{"SYMGRAD_BUILD_DIR": d} for d in dirs])
        if res["symgrad cold (empty build dir)"]["status"] == "ok":
            series("symgrad warm (cached, new process)", "symgrad", [{"SYMGRAD_BUILD_DIR": dirs[-1]}] * reps)
    if "torch.compile" in names and "torch.compile" not in cfg["skip"]:
        series("torch.compile first call (cold)", "torch.compile",
               [{"TORCHINDUCTOR_CACHE_DIR": tempfile.mkdtemp(prefix="inductor-", dir=tmp)}])
    if "jax" in names and "jax" not in cfg["skip"]:
        series("jax jit first call", "jax", [{}] * reps)
    if "pytensor" in names and "pytensor" not in cfg["skip"]:
        series("pytensor function (default compiledir)", "pytensor", [{}] * reps)
    return res


# --- printing ------------------------------------------------------------------------------------

def fmt_time(s, unit=None):
    if s is None:
        return "-"
    if unit == "us" or s < 1e-3:
        return f"{s * 1e6:.1f} us" if s < 1e-4 else f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.3g} ms" if s < 0.1 else f"{s * 1e3:.0f} ms"
    return f"{s:.2f} s" if s < 10 else f"{s:.1f} s"


def table(rows, header, left=(0,)):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) if i in left else str(c).rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def floor_s(wl, limits):
    if wl.floor_kind == "bytes" and limits.get("bandwidth"):
        return wl.floor_amount / (limits["bandwidth"]["GB_per_s"] * 1e9)
    if wl.floor_kind == "flops" and limits.get("gemm_floor"):
        return wl.floor_amount / (limits["gemm_floor"]["GFLOP_per_s"] * 1e9)
    return None


def cell_text(c, unit):
    if c is None:
        return "skipped"
    if c["status"] == "n/a":
        return "n/a"
    if c["status"] != "ok":
        return "error"
    return f"{fmt_time(c['median_s'], unit)} {c['check']}"


def thread_env(n):
    """The environment that caps each library at n threads (set before any worker starts)."""
    env = {"OMP_NUM_THREADS": str(n), "OPENBLAS_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}
    if n == 1:
        env["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                            " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    return env


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--gpu" in argv:                 # the GPU mode: benchmarks/gpu.py
        import gpu
        return gpu.main([a for a in argv if a != "--gpu"])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", action="store_true", help="the GPU mode instead (benchmarks/gpu.py; its own options)")
    ap.add_argument("--quick", action="store_true", help="W1 at N=1e6 only, fewer repeats (about 1-2 minutes)")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "latest.json"), help="where to write results")
    ap.add_argument("--only", default="", help="comma-separated workload groups: W1,...,W5 (TUNED: all five), LN, RMS, SM, LSM, LSE, "
                         "ATT, MHA, BLOCK, MLP, RNN, HVP, BMM (MODELS: all of these), VARIANTS (the same kinds at other sizes, ids with a prime), compile; or single ids such as MLP'")
    ap.add_argument("--skip", default="", help="comma-separated implementations to leave out, e.g. torch.compile")
    ap.add_argument("--threads", type=int, default=0,
                    help="run every implementation on this many CPUs (affinity, OMP/BLAS/torch/XLA thread "
                         "counts); 0: library defaults")
    ap.add_argument("--no-torch-in-symgrad", action="store_true",
                    help="do not import torch in symgrad's worker (by default it is imported first)")
    ap.add_argument("--cell-timeout", type=float, default=0,
                    help="seconds one cell (or one compile-time child) may take before it is killed "
                         "and reported as an error (default 240, 90 with --quick)")
    args = ap.parse_args(argv)
    cfg = dict(SETTINGS["quick" if args.quick else "full"])
    cfg["skip"] = {s.strip() for s in args.skip.split(",") if s.strip()}
    cfg["quick"] = args.quick
    cfg["cell_timeout"] = args.cell_timeout or (90.0 if args.quick else 240.0)
    cfg["threads"] = args.threads
    cfg["with_torch"] = not args.no_torch_in_symgrad
    if args.threads:
        os.environ.update(thread_env(args.threads))
    only = {s.strip().upper() for s in args.only.split(",") if s.strip()}
    started = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="symgrad-bench-")
    atexit.register(shutil.rmtree, tmp, True)

    log(f"symgrad benchmarks ({'quick' if args.quick else 'full'}), {time.strftime('%Y-%m-%d %H:%M:%S')}")
    problems = W.self_check_reference()
    if problems:
        log("WARNING: the float64 reference disagrees with finite differences:\n  " + "\n  ".join(problems))
    else:
        log("reference: hand-derived float64 gradients agree with central differences (all workloads)")

    available = impls.available()
    impl_names = [n for n, _, _ in available]
    log("\nimplementations:")
    for n, cls, note in available:
        state = "skipped (--skip)" if n in cfg["skip"] else (note if cls is None else f"version {note}")
        if n == "pytensor" and cls is not None:
            state += f", mode={impls.PYTENSOR_MODE}"
        log(f"  {n:<14} {state}")

    threads = machine.thread_settings(available)
    log(f"\nthreads (library defaults, not overridden): {threads['cpu_count']} CPUs ({threads['cpu']}), "
        f"affinity {threads['affinity']}, env {threads['env'] or '{}'}")
    for k in ("symgrad", "numpy", "torch", "jax", "pytensor"):
        if k in threads:
            log(f"  {k:<9} {threads[k]}")

    limits = {}
    log("\nmachine limits:")
    try:
        limits["bandwidth"] = machine.stream_triad(reps=cfg["triad_reps"])
        bw = limits["bandwidth"]
        log(f"  memory bandwidth  {bw['GB_per_s']:.1f} GB/s  (triad, 3 x {bw['arrays_MB']} MB doubles, "
            f"OpenMP {bw['omp_threads']} threads, best of {bw['reps']})")
    except Exception as e:  # noqa: BLE001
        log(f"  memory bandwidth: error ({e})")
    gemms = [("gemm", machine.gemm_rate, "numpy matmul")]
    if any(n == "torch" and cls is not None for n, cls, _ in available):
        gemms.append(("gemm_torch", machine.gemm_rate_torch, "torch.mm"))
    for key, measure, what in gemms:
        try:
            g = limits[key] = measure(reps=cfg["gemm_reps"], threads=cfg["threads"] or None)
            log(f"  float32 GEMM      {g['GFLOP_per_s']:.1f} GFLOP/s  ({what} {g['n']}^2, best of {g['reps']})")
        except Exception as e:  # noqa: BLE001
            log(f"  {what} GEMM rate: error ({e})")
    rates = [limits[k] for k in ("gemm", "gemm_torch") if k in limits]
    if rates:
        limits["gemm_floor"] = max(rates, key=lambda r: r["GFLOP_per_s"])
        log(f"  floors use {limits['gemm_floor']['GFLOP_per_s']:.1f} GFLOP/s (the better GEMM)")
    load = os.getloadavg()
    limits["loadavg_at_start"] = load
    log(f"  load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (above ~0.5 means something else is "
        f"running: timings are noisier)")

    wls = [w for w in W.make_workloads(args.quick)
           if (not only and w.group != "VARIANTS") or w.group in only or w.id.upper() in only
           or ("MODELS" in only and w.kind not in W.NUMPY and w.group != "VARIANTS")
           or ("TUNED" in only and w.kind in W.NUMPY)]
    cells = {}
    by_id = {wl.id: wl for wl in wls}
    if wls:
        log("\nworkloads (floor: minimum bytes / bandwidth, or FLOPs / GEMM rate):")
        for wl in wls:
            fl = floor_s(wl, limits)
            log(f"  {wl.id:<7} {wl.title}" + (f"   [floor {fmt_time(fl, wl.unit)}]" if fl else ""))
    worker_env = child_env({} if os.environ.get("SYMGRAD_BUILD_DIR") else
                           {"SYMGRAD_BUILD_DIR": tempfile.mkdtemp(prefix="sg-build-", dir=tmp)})

    def on_cell(c):
        wl = by_id[c["workload"]]
        cells[(c["workload"], c["impl"])] = c
        head = f"  {c['workload']:<7} {c['impl']:<14}"
        if c["status"] == "ok":
            log(f"{head} {fmt_time(c['median_s'], wl.unit):>10}  ({c['samples']} samples"
                + (f" x {c['calls_per_sample']} calls" if c["calls_per_sample"] > 1 else "")
                + f")  first call {fmt_time(c['first_call_s'])}  {c['check']}"
                + (f"  max rel.err {c['max_rel_err']:.1e}" if c["check"] == "PASS" else f"  ({c['check_note']})"))
        else:
            log(f"{head} {c['status']}: {c['error']}")

    for n, cls, _ in available:
        if wls and cls is not None and n not in cfg["skip"]:
            log(f"\n{n} (own process per implementation; first call includes compiling):")
            run_impl(n, wls, cfg, worker_env, on_cell)

    compile_res = {}
    if not only or "W2" in only or "COMPILE" in only:
        log("\ncompile times for W2 (compile + first value_and_grad, timed inside a fresh process):")
        compile_res = compile_times(available, cfg, tmp)

    # --- summary -----------------------------------------------------------------------------------
    shown = [n for n, cls, _ in available if cls is not None and n not in cfg["skip"]]
    if wls:
        log("\n=== median time per value_and_grad (PASS/FAIL: value and every gradient vs float64, rtol 1e-3) ===")
        rows = [[wl.id] + [cell_text(cells.get((wl.id, n)), wl.unit) for n in shown] for wl in wls]
        log(table(rows, ["workload"] + shown))

        log("\n=== ratio: peer time / symgrad time  (>1: symgrad is faster) ===")
        peers = [n for n in shown if n != "symgrad"]
        rows = []
        for wl in wls:
            s = cells.get((wl.id, "symgrad"))
            row = [wl.id]
            for n in peers:
                c = cells.get((wl.id, n))
                if c is None or c["status"] != "ok" or not s or s["status"] != "ok":
                    row.append("-" if c is None or c["status"] in ("ok", "n/a") else "error")
                else:
                    c["ratio_vs_symgrad"] = c["median_s"] / s["median_s"]
                    row.append(f"{c['ratio_vs_symgrad']:.2f}")
            rows.append(row)
        log(table(rows, ["workload"] + peers))

        bw, gm = limits.get("bandwidth"), limits.get("gemm_floor")
        log(f"\n=== floors: minimum bytes / bandwidth ({bw['GB_per_s']:.1f} GB/s) or FLOPs / GEMM rate "
            f"({gm['GFLOP_per_s']:.1f} GFLOP/s) ===" if bw and gm else "\n=== floors ===")
        rows = []
        for wl in wls:
            fl = floor_s(wl, limits)
            s = cells.get((wl.id, "symgrad"))
            amount = (f"{wl.floor_amount / 1e6:.1f} MB" if wl.floor_kind == "bytes" else
                      f"{wl.floor_amount / 1e9:.2f} GFLOP" if wl.floor_kind == "flops" else "-")
            st = s["median_s"] if s and s["status"] == "ok" else None
            rows.append([wl.id, amount, fmt_time(fl, wl.unit) if fl else "-", fmt_time(st, wl.unit),
                         f"{st / fl:.2f}" if st and fl else "-", wl.floor_note])
        log(table(rows, ["workload", "moves/does", "floor", "symgrad", "symgrad/floor", "basis"],
                  left=(0, 5)))

    if compile_res:
        log("\n=== compile times, W2 (ms, median; timed inside the child: compile() + first call) ===")
        rows = []
        for k, r in compile_res.items():
            if r["status"] == "ok":
                rows.append([k, f"{r['median_ms']:.0f}", f"{r['compile_ms']:.0f}", f"{r['first_call_ms']:.0f}",
                             f"{r['import_and_graph_ms']:.0f}", r["check"]])
            else:
                rows.append([k, "error", "", "", "", r["error"][:60]])
        log(table(rows, ["", "compile+1st call", "compile()", "1st call", "import+graph", "check"]))

    notes = [f"{n}: {note}" for n, cls, note in available if cls is None] + threads.get("notes", [])
    notes += [f"{k[1]} on {k[0]}: {c['error']}" for k, c in cells.items() if c["status"] == "error"]
    notes += [f"{k[1]} on {k[0]}: FAIL ({c['check_note']})" for k, c in cells.items()
              if c["status"] == "ok" and c["check"] != "PASS"]
    if notes:
        log("\nnotes:\n  " + "\n  ".join(notes))
    total = time.perf_counter() - started
    limits["loadavg_at_end"] = os.getloadavg()
    log(f"\ntotal {total:.0f} s; load average at the end {limits['loadavg_at_end'][0]:.2f}")

    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "mode": "quick" if args.quick else "full",
              "argv": sys.argv[1:], "settings": {k: v for k, v in cfg.items() if k != "skip"},
              "symgrad_build_dir": os.environ.get("SYMGRAD_BUILD_DIR") or "a fresh temporary dir (removed at exit)",
              "python": platform.python_version(), "platform": platform.platform(),
              "implementations": {n: (note if cls is not None else None) for n, cls, note in available},
              "skipped": sorted(cfg["skip"]), "not_installed": {n: note for n, cls, note in available if cls is None},
              "threads": threads, "limits": limits, "reference_self_check": problems or "ok",
              "workloads": [{"id": wl.id, "title": wl.title, "unit": wl.unit, "floor_kind": wl.floor_kind,
                             "floor_amount": wl.floor_amount, "floor_s": floor_s(wl, limits),
                             "floor_note": wl.floor_note,
                             "cells": {n: cells.get((wl.id, n)) for n in impl_names if (wl.id, n) in cells}}
                            for wl in wls],
              "compile_W2": compile_res, "total_s": total}
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
