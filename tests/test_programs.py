"""Tutorial-style programs (tests/programs/*.py, written against `torch`) run unchanged with
`import symgrad as torch`: each runs in a subprocess twice, once with real PyTorch and once with
its import lines swapped for symgrad, and the two printed outputs must agree.

Agreement: line for line, the text between numbers is identical (object addresses masked), and
each printed number equals PyTorch's to the last digit printed (one unit of that digit is
allowed, for float32 sums taken in another order). The programs print no values drawn from
PyTorch's random generator (only shapes and dtypes of random tensors)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = sorted((Path(__file__).resolve().parent / "programs").glob("*.py"))
TIMEOUT = 300

_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?\b(?:inf|nan)\b")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def as_symgrad(source: str) -> str:
    """The program with its torch imports swapped for symgrad's; nothing else changes."""
    lines = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == "import torch":
            line = line.replace("import torch", "import symgrad as torch")
        elif stripped.startswith("import torch.") or stripped.startswith("from torch"):
            line = line.replace("torch", "symgrad", 1)
        lines.append(line)
    return "\n".join(lines) + "\n"


def run(source: str, tmp_path: Path, label: str) -> str:
    path = tmp_path / f"{label}.py"
    path.write_text(source)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("SYMGRAD_BUILD_DIR", str(ROOT / "build"))
    try:
        done = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{label}: no result after {TIMEOUT} s")
    if done.returncode != 0:
        pytest.fail(f"{label} exited with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def _unit(text: str) -> float:
    """One unit of the last digit printed in `text`."""
    mantissa, _, exponent = text.lower().partition("e")
    digits = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - digits)


def _numbers_agree(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return abs(x - y) <= max(_unit(a), _unit(b)) * 1.0001


def differences(expected: str, got: str) -> list[str]:
    """Where two outputs disagree, as 'line n: expected | got' texts (empty when they agree).
    symgrad names itself where PyTorch says `torch.` (`dtype=symgrad.float64`): that is the
    one text allowed to differ."""
    got = got.replace("symgrad.", "torch.")
    want, have = _ADDRESS.sub("0x?", expected).splitlines(), _ADDRESS.sub("0x?", got).splitlines()
    out = []
    if len(want) != len(have):
        out.append(f"{len(want)} lines expected, {len(have)} printed")
    for n, (w, h) in enumerate(zip(want, have), 1):
        wn, hn = _NUMBER.findall(w), _NUMBER.findall(h)
        same = (_NUMBER.split(w) == _NUMBER.split(h) and len(wn) == len(hn)
                and all(_numbers_agree(a, b) for a, b in zip(wn, hn)))
        if not same:
            out.append(f"line {n}:\n  torch:   {w}\n  symgrad: {h}")
    return out


def test_comparison_catches_differences():
    # The comparison itself: numbers differing beyond their last digit, other text, or lines.
    assert differences("tensor([1.0000, 2.5000])", "tensor([1.0001, 2.5000])") == []
    assert differences("tensor([1.0000, 2.5000])", "tensor([1.0002, 2.5000])")
    assert differences("tensor([1., 2.])", "tensor([1., 2.], requires_grad=True)")
    assert differences("<A object at 0x7f00>", "<A object at 0x1234abcd>") == []
    assert differences("a\nb", "a")
    assert differences("99 1234.5", "99 1234.7")
    assert differences("1e-05", "2e-05")
    assert as_symgrad("import torch\nx = torch.ones(2)  # import torch\n") == \
        "import symgrad as torch\nx = torch.ones(2)  # import torch\n"


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_program_prints_what_torch_prints(path, tmp_path):
    pytest.importorskip("torch")
    source = path.read_text()
    expected = run(source, tmp_path, "with_torch")
    got = run(as_symgrad(source), tmp_path, "with_symgrad")
    diff = differences(expected, got)
    assert not diff, f"{path.name}: output differs from PyTorch's\n" + "\n".join(diff[:20])
