"""Tutorial-style programs (tests/programs/*.py, written against `torch`) run unchanged with
`import symgrad as torch`: each runs in a subprocess twice, once with real PyTorch and once with
its import lines swapped for symgrad, and the two printed outputs must agree.

Agreement: line for line, the text between numbers is identical (object addresses masked, and
symgrad's `symgrad.` where PyTorch prints `torch.`), and each printed number equals PyTorch's
as printed (one unit of the last digit is allowed for floats of 6 or more significant digits:
float32 sums taken in another order). Values drawn after `manual_seed` are printed too:
symgrad's generator draws PyTorch's numbers (symgrad/generator.py).

Below them, each fix these programs needed, checked against PyTorch directly."""
from __future__ import annotations

import hashlib
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


def _significant(text: str) -> int:
    digits = text.lower().partition("e")[0].replace("-", "").replace("+", "").replace(".", "")
    return len(digits.lstrip("0"))


def _numbers_agree(a: str, b: str) -> bool:
    """Equal numbers; or, for floating point numbers printed with 6 or more significant digits
    (sums of many float32 terms), one unit of the last digit apart."""
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if x == y:
        return True
    floating = all("." in t or "e" in t.lower() for t in (a, b))
    if not floating or min(_significant(a), _significant(b)) < 6:
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
    assert differences("loss 12.34567", "loss 12.34568") == []
    assert differences("tensor([1.0000, 2.5000])", "tensor([1.0001, 2.5000])")
    assert differences("tensor([1., 2.])", "tensor([1., 2.], requires_grad=True)")
    assert differences("<A object at 0x7f00>", "<A object at 0x1234abcd>") == []
    assert differences("a\nb", "a")
    assert differences("99 1234.5", "99 1234.7")
    assert differences("99 1234.56", "99 1234.57") == []
    assert differences("1e-05", "2e-05")
    assert differences("tensor([  1., 561.])", "tensor([  1., 562.])")
    assert differences("tensor([3.1416])", "tensor([3.1415])")
    assert differences("tensor([1., 2.], dtype=torch.float64)",
                       "tensor([1., 2.], dtype=symgrad.float64)") == []
    assert as_symgrad("import torch\nx = torch.ones(2)  # import torch\n") == \
        "import symgrad as torch\nx = torch.ones(2)  # import torch\n"


def torch_output(source: str, tmp_path: Path) -> str:
    """What the program prints with PyTorch: run once per program text and PyTorch version, then
    kept in the build directory (starting PyTorch takes most of a program's time)."""
    from importlib.metadata import version
    key = hashlib.sha256(f"{version('torch')}\n{sys.version}\n{source}".encode()).hexdigest()[:24]
    cache = Path(os.environ.get("SYMGRAD_BUILD_DIR", ROOT / "build")) / "torch-outputs" / f"{key}.txt"
    if cache.exists():
        return cache.read_text()
    out = run(source, tmp_path, "with_torch")
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(out)
    partial.replace(cache)
    return out


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_program_prints_what_torch_prints(path, tmp_path):
    pytest.importorskip("torch")
    source = path.read_text()
    expected = torch_output(source, tmp_path)
    got = run(as_symgrad(source), tmp_path, "with_symgrad")
    diff = differences(expected, got)
    assert not diff, f"{path.name}: output differs from PyTorch's\n" + "\n".join(diff[:20])


# --- the fixes these programs needed, each checked against PyTorch directly -------------------

import math  # noqa: E402

import numpy as np  # noqa: E402

import symgrad as sg  # noqa: E402


@pytest.fixture(params=["torch", "symgrad"])
def T(request):
    return pytest.importorskip("torch") if request.param == "torch" else sg


def _both(case):
    torch = pytest.importorskip("torch")
    return case(torch), case(sg)


@pytest.mark.parametrize("start, end, steps", [(-math.pi, math.pi, 2000), (0.0, 2 * math.pi, 25), (0, 1, 11),
                                               (3, -7, 13), (-1e3, 1e-3, 777), (0, 1, 100001), (2, 2, 1),
                                               (0, 1, 0)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linspace_gives_torchs_values_bit_for_bit(start, end, steps, dtype):
    theirs, ours = _both(lambda T: T.linspace(start, end, steps, dtype=getattr(T, dtype)).numpy())
    assert theirs.dtype == ours.dtype
    np.testing.assert_array_equal(ours, theirs)


def test_shape_prints_as_torch_size_and_symgrad_messages_keep_tuples():
    theirs, ours = _both(lambda T: (str(T.ones(2, 3).shape), f"{T.ones(2, 3).shape}",
                                    repr(T.ones(4).shape), T.ones(2, 3).shape == (2, 3)))
    assert ours == theirs
    with pytest.raises(IndexError, match=r"dim 2 out of range for shape \(3, 4\)"):
        sg.ones(3, 4).sum(2)


def test_a_zero_dim_value_formats_as_its_number():
    theirs, ours = _both(lambda T: (f"{T.tensor(3.5)}", f"{T.tensor(7)}", f"{T.tensor(2.25):.1f}",
                                    f"{T.tensor([1.0, 2.0])}"))
    assert ours == theirs


def test_in_place_methods_take_torchs_keyword_names():
    def case(T):
        t = T.ones(3)
        t.add_(other=T.tensor([1.0, 2.0, 3.0]), alpha=2)
        t.mul_(other=2).sub_(other=1, alpha=0.5).div_(other=4)
        t.clamp_(max=1.5).pow_(exponent=2)
        return t.numpy().copy()
    theirs, ours = _both(case)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    with pytest.raises(TypeError, match="add_"):
        sg.ones(2).add_(bogus=1)


def test_set_printoptions_as_torch():
    torch = pytest.importorskip("torch")
    texts = {}
    for T in (torch, sg):
        out = []
        try:
            for kwargs in [dict(precision=2), dict(precision=6), dict(threshold=5),
                           dict(edgeitems=1, threshold=3), dict(linewidth=30), dict(sci_mode=True),
                           dict(sci_mode=False), dict(profile="short"), dict(profile="full")]:
                T.set_printoptions(**kwargs)
                out += [str(T.linspace(-3, 3, 9)), str(T.arange(12.0).reshape(3, 4) * 1e5),
                        str(T.tensor([1e-6, 1.0]))]
                T.set_printoptions(profile="default")
        finally:
            T.set_printoptions(profile="default")
        texts[T.__name__] = [t.replace("symgrad.", "torch.") for t in out]
    assert texts["symgrad"] == texts["torch"]


def test_ceil_var_std_and_friends_match_torch_with_gradients():
    a = np.array([[-1.5, 0.25, 2.0], [3.5, -0.75, 1.0]])

    def case(T):
        x = T.tensor(a, requires_grad=True)
        outs = [T.ceil(x), T.var(x), T.std(x, dim=0), x.var(1, keepdim=True), T.std(x, correction=0),
                T.reciprocal(x), T.rsqrt(x.abs()), T.square(x)]
        total = sum(o.sum() for o in outs)
        total.backward()
        names = [type(o.grad_fn).__name__ for o in outs]
        values = [o.detach().numpy() for o in outs]
        return values, x.grad.numpy(), names, T.unique(T.tensor([3, 1, 3, 2])).tolist()
    (tv, tg, tn, tu), (sv, sgd, sn, su) = _both(case)
    for t, s in zip(tv, sv):
        np.testing.assert_allclose(s, t, rtol=1e-12)
    np.testing.assert_allclose(sgd, tg, rtol=1e-12)
    assert sn == tn and su == tu


def test_writes_into_values_without_history_reach_their_views():
    def case(T):
        a = T.ones(2, 2)
        b = a
        a[0][1] = 561
        p = T.arange(6.0).reshape(2, 3)
        n = p.numpy()
        p[1, 1] = 17
        y = T.arange(3.0) * 2
        z = y + 1
        y.add_(10)
        return b.tolist(), n.tolist(), p.tolist(), y.tolist(), z.tolist(), y.is_leaf
    theirs, ours = _both(case)
    assert ours == theirs


def test_cuda_is_available_says_whether_variables_can_be_made_on_a_gpu():
    # PyTorch programs pick their device with it: symgrad's eager Variables live on the CPU.
    assert sg.cuda.is_available() is False
    device = "cuda" if sg.cuda.is_available() else "cpu"
    assert sg.ones(2, device=device).device == sg.device("cpu")
    # Whether compiled functions can run on a GPU here is another question.
    assert sg.cuda.device_available() == (sg.cuda.device_count() > 0)


def test_is_tensor_numel_is_floating_point(T):
    x = T.ones(2, 3)
    assert (T.is_tensor(x), T.is_tensor([1]), T.numel(x), T.is_floating_point(x),
            T.is_floating_point(T.tensor([1]))) == (True, False, 6, True, False)


def test_dtype_prints_with_the_module_name():
    assert str(sg.ones(1).dtype) == "symgrad.float32"


def test_all_any_std_mean_and_in_place_functions_match_torch():
    a = np.array([[1.0, 0.0, 3.0], [2.0, -2.0, 0.5]])

    def case(T):
        x = T.tensor(a)
        out = [x.eq(x).all(), T.all(x), T.any(x, dim=1), x.all(0), T.any(T.zeros(2)), (x > 1).any(1, True),
               *T.std_mean(x), *T.var_mean(x, dim=1, keepdim=True)]
        y = T.tensor(a)
        T.exp_(y)
        T.clamp_(y, 1.0, 5.0)
        T.sqrt_(y)
        return [o.numpy() for o in out] + [y.numpy()]
    theirs, ours = _both(case)
    for t, o in zip(theirs, ours):
        assert t.dtype == o.dtype
        np.testing.assert_allclose(o, t, rtol=1e-14)


def test_outer_repeat_numpy_keyword_aliases_match_torch():
    def case(T):
        x = T.tensor([1.0, -2.0], requires_grad=True)
        m = T.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
        o, r, r2 = T.outer(x, x), x.repeat(2, 2), m.repeat(2, 1, 2)
        (o.sum() + (r * T.arange(8.0).reshape(2, 4)).sum() + (r2 * r2).sum()).backward()
        sums = (m.sum(axis=1), T.mean(m, axis=1, keepdims=True), m.sum(dim=0, keepdims=True))
        names = [type(v.grad_fn).__name__ for v in (o, r, r2)]
        return ([v.detach().numpy().tolist() for v in (o, r, r2, *sums)], x.grad.tolist(), m.grad.tolist(),
                names, x.is_contiguous(), T.manual_seed(0) is not None)
    theirs, ours = _both(case)
    assert ours == theirs
    with pytest.raises(TypeError, match="both 'axis' and 'dim'"):
        sg.ones(2).sum(axis=0, dim=0)
