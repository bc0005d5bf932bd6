"""Run in a fresh process by run.py: build W2 with one implementation and time, from inside
this process, compile() plus the first value_and_grad call. Prints one JSON line."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    which = sys.argv[1]
    t0 = time.perf_counter()
    import impls
    import workloads as W
    cls = dict((n, c) for n, c, _ in impls.IMPLS)[which]
    wl = next(w for w in W.make_workloads(quick=True) if w.id == "W2")
    arrays = W.make_inputs(wl)
    b = cls(wl)                       # imports the framework, defines the graph (untimed)
    t1 = time.perf_counter()
    b.compile()
    t2 = time.perf_counter()
    out = b.call(b.prepare(arrays))
    t3 = time.perf_counter()
    value, grads = b.to_numpy(out)
    ok, err, note = W.check(wl, value, grads, W.reference(wl, arrays))
    print(json.dumps({"impl": which, "compile_plus_first_call_ms": 1e3 * (t3 - t1),
                      "compile_ms": 1e3 * (t2 - t1), "first_call_ms": 1e3 * (t3 - t2),
                      "import_and_graph_ms": 1e3 * (t1 - t0), "ok": ok, "err": err, "note": note}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
