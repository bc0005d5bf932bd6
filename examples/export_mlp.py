"""Export an MLP's value_and_grad as plain C, then train it from C with plain SGD.

    python examples/export_mlp.py [directory]

writes `mlp.c`, `mlp.h` and `README` (fn.export) into the directory (default: a temporary
one), builds `examples/export_mlp_train.c` against them with `cc ... -lm` (no Python, symgrad
or BLAS in the program), runs it and shows the loss falling."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import symgrad as sg

BATCH, IN, HIDDEN, OUT = 64, 2, 16, 2           # export_mlp_train.c uses the same sizes


def export(directory: Path) -> None:
    x = sg.Variable(shape=(BATCH, IN), name="x")
    labels = sg.Variable(shape=(BATCH,), dtype="int64", name="labels")
    W1 = sg.Variable(shape=(IN, HIDDEN), name="W1", requires_grad=True)
    b1 = sg.Variable(shape=(HIDDEN,), name="b1", requires_grad=True)
    W2 = sg.Variable(shape=(HIDDEN, OUT), name="W2", requires_grad=True)
    b2 = sg.Variable(shape=(OUT,), name="b2", requires_grad=True)
    loss = sg.cross_entropy(sg.tanh(x @ W1 + b1) @ W2 + b2, labels)
    loss.name = "loss"
    fn = sg.compile([x, labels, W1, b1, W2, b2], loss)
    written = fn.export(directory, prefix="mlp")
    print("exported", ", ".join(written["entries"]), "to", directory)


def main(argv) -> int:
    directory = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="symgrad-export-"))
    export(directory)
    shutil.copy(Path(__file__).with_name("export_mlp_train.c"), directory / "train.c")
    cc = shutil.which("cc") or "gcc"
    subprocess.run([cc, "-std=c99", "-O2", "-c", "mlp.c"], cwd=directory, check=True)
    subprocess.run([cc, "-std=c99", "-O2", "train.c", "mlp.o", "-o", "train", "-lm"], cwd=directory,
                   check=True)
    return subprocess.run(["./train"], cwd=directory).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
