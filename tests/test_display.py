"""SPEC §3 for the core: `print(v)` as PyTorch prints, `sg.debugprint` and `sg.to_dot`."""
from __future__ import annotations

import re

import numpy as np
import pytest

import symgrad as sg
from conftest import sg_to_torch_str

pytestmark = pytest.mark.usefixtures("interp_backward")

# Values chosen to walk through PyTorch's formatter: integers held as floats, fixed point,
# scientific notation (wide ranges, tiny or huge values), negative numbers, inf and nan,
# integer and bool tensors, 0-d and empty tensors, and summarised large tensors.
VALUES = {
    "ints_as_floats": np.array([1.0, 2.0, 3.0], np.float32),
    "ints_as_floats_2d": np.ones((2, 2), np.float32) * 27,
    "negative_ints_as_floats": np.array([-1.0, 20.0, 300.0], np.float32),
    "decimals": np.array([0.5, 1.25, -3.125], np.float32),
    "tutorial_weights": np.array([2.0, 0.2, 0.02], np.float32),
    "tutorial_grad": np.array([25.6, 256.0, 0.256], np.float32),
    "four_and_a_half": np.full((2, 2), 4.5, np.float32),
    "mixed_width": np.array([[-4.0262, -3.9377], [-1.4241, 10.5]], np.float32),
    "sci_small": np.array([1e-5, 1.0, 2.0], np.float32),
    "sci_large": np.array([1e9, 1.0], np.float32),
    "sci_wide_range": np.array([0.001, 12345.678], np.float32),
    "sci_ints_wide": np.array([1.0, 100000.0], np.float32),
    "tiny": np.array([1e-8, -2e-7], np.float32),
    "huge_ints": np.array([1e10, 3e10], np.float32),
    "zeros": np.zeros(3, np.float32),
    "zeros_2d": np.zeros((3, 4), np.float32),
    "inf_nan": np.array([np.inf, -np.inf, np.nan, 1.5], np.float32),
    "inf_ints": np.array([np.inf, 1.0, 2.0], np.float32),
    "nan_only": np.array([np.nan], np.float32),
    "scalar_float": np.array(27.0, np.float32),
    "scalar_decimal": np.array(-18.1752, np.float32),
    "scalar_sci": np.array(1.5e-6, np.float32),
    "scalar_int64": np.array(5, np.int64),
    "scalar_bool": np.array(True),
    "one_element": np.array([4.0], np.float32),
    "int64": np.array([1, -20, 300], np.int64),
    "int64_2d": np.arange(12, dtype=np.int64).reshape(3, 4),
    "int32": np.array([1, 2, 3], np.int32),
    "bool": np.array([True, False, True]),
    "bool_2d": np.array([[True, False], [False, False]]),
    "float64": np.array([1.0, 2.5], np.float64),
    "float64_ints": np.array([[1.0, 2.0], [3.0, 4.0]], np.float64),
    "3d": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
    "4d": np.arange(16, dtype=np.float32).reshape(2, 2, 2, 2),
    "empty": np.zeros(0, np.float32),
    "empty_2d": np.zeros((0, 3), np.float32),
    "empty_int": np.zeros(0, np.int64),
    "long_row_wraps": np.linspace(-1, 1, 20).astype(np.float32),
    "long_int_row_wraps": np.arange(40, dtype=np.int64) * 1000,
    "summarised_1d": np.arange(2000, dtype=np.float32),
    "summarised_2d": np.arange(1200, dtype=np.float32).reshape(40, 30) / 3,
    "random_normal": np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32),
    "random_scaled": (np.random.default_rng(2).standard_normal(6) * 1e3).astype(np.float32),
}


@pytest.mark.parametrize("name", sorted(VALUES))
def test_print_matches_torch(name, torch):
    a = VALUES[name]
    ours = str(sg.tensor(a))
    theirs = str(torch.tensor(a))
    assert sg_to_torch_str(ours) == theirs
    assert repr(sg.tensor(a)) == ours


FLOAT_VALUES = [n for n, a in VALUES.items() if a.dtype.kind == "f" and a.size and a.size < 1000]


@pytest.mark.parametrize("name", sorted(FLOAT_VALUES))
def test_print_requires_grad_and_grad_fn_matches_torch(name, torch):
    a = VALUES[name]
    x, t = sg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    assert sg_to_torch_str(str(x)) == str(t)
    assert sg_to_torch_str(str(x * 2)) == str(t * 2)
    assert sg_to_torch_str(str(x + 1)) == str(t + 1)
    if name not in ("long_row_wraps",):      # a sum near 0: the summation order shows
        assert sg_to_torch_str(str(x.sum())) == str(t.sum())
    with sg.no_grad(), torch.no_grad():
        assert sg_to_torch_str(str(x * 2)) == str(t * 2)


def test_print_tutorial_forms():
    # the outputs the tutorials show, independent of torch
    x = sg.Variable(sg.ones(2, 2), requires_grad=True)
    assert str(x) == "tensor([[1., 1.],\n        [1., 1.]], requires_grad=True)"
    y = x + 2
    assert str(y) == "tensor([[3., 3.],\n        [3., 3.]], grad_fn=<AddBackward0>)"
    out = (y * y * 3).mean()
    assert str(out) == "tensor(27., grad_fn=<MeanBackward0>)"
    out.backward()
    assert str(x.grad) == "tensor([[4.5000, 4.5000],\n        [4.5000, 4.5000]])"
    assert str(sg.tensor([2.0, 0.2, 0.02])) == "tensor([2.0000, 0.2000, 0.0200])"
    assert str(sg.tensor(20.0)) == "tensor(20.)"
    assert str(sg.tensor([1, 2])) == "tensor([1, 2])"
    assert str(sg.tensor([True, False])) == "tensor([ True, False])"
    assert str(sg.tensor([1.0, 2.0], dtype="float64")) == "tensor([1., 2.], dtype=symgrad.float64)"
    assert str(sg.tensor([1, 2], dtype="int32")) == "tensor([1, 2], dtype=symgrad.int32)"
    assert repr(x.size()) == "torch.Size([2, 2])"


def test_print_long_suffix_wraps_like_torch(torch):
    a = np.linspace(-1, 1, 8).astype(np.float64)
    x, t = sg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    assert sg_to_torch_str(str(x * 3)) == str(t * 3)
    assert sg_to_torch_str(str(x)) == str(t)


def test_format_spec_on_one_element_values():
    assert f"{sg.tensor(24.70408163265306):.4f}" == "24.7041"
    assert f"{sg.tensor([3.5])}" == "tensor([3.5000])"


def test_grad_fn_repr():
    x = sg.ones(2, requires_grad=True)
    assert re.fullmatch(r"<MulBackward0 object at 0x[0-9a-f]+>", repr((x * 2).grad_fn))
    assert re.fullmatch(r"<SumBackward0 object at 0x[0-9a-f]+>", repr(x.sum().grad_fn))
    assert x.grad_fn is None
    assert (x * 2).grad_fn.name() == "MulBackward0"


# --- debugprint --------------------------------------------------------------------------------


def _graph():
    x = sg.Variable(shape=(4, 3), name="x")
    W = sg.Variable(shape=(3, 2), name="W", requires_grad=True)
    b = sg.Variable(shape=(2,), name="b", requires_grad=True)
    h = sg.tanh(x @ W + b)
    loss = (h * h).mean()
    return x, W, b, h, loss


def _node_count(outputs):
    from symgrad.graph import toposort
    return len(toposort(outputs))


def test_debugprint_one_line_per_node_with_shapes(capsys):
    x, W, b, h, loss = _graph()
    text = sg.debugprint(loss)
    assert capsys.readouterr().out == text + "\n"
    lines = text.splitlines()
    # h appears twice as an input of h * h: the second time it is a reference, not a new node
    first_time = [ln for ln in lines if "(see above)" not in ln]
    assert len(first_time) == _node_count([loss])
    for name, shape in [("x", (4, 3)), ("W", (3, 2)), ("b", (2,))]:
        (line,) = [ln for ln in first_time if f"'{name}'" in ln]
        assert str(shape) in line and "float32" in line
    assert "()" in lines[0]                         # the output first, 0-d
    assert any("matmul" in ln and "(4, 2)" in ln for ln in lines)
    assert any("tanh" in ln for ln in lines)
    # indentation grows with depth: inputs are indented under their users
    depth = [len(ln) - len(ln.lstrip()) for ln in lines]
    assert depth[0] == 0 and max(depth) > 0
    assert any("(see above)" in ln for ln in lines)


def test_debugprint_of_values_and_gradients(capsys):
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    (g,) = sg.grad(y, x)
    text = sg.debugprint([y, g])
    capsys.readouterr()
    lines = [ln for ln in text.splitlines() if "(see above)" not in ln]
    assert len(lines) == _node_count([y, g])
    assert all(re.search(r"\(\d*(, \d+)*,?\) (float32|float64|int64|int32|bool)", ln) for ln in lines)


def test_debugprint_to_a_file(tmp_path):
    _, _, _, _, loss = _graph()
    with open(tmp_path / "g.txt", "w") as f:
        text = sg.debugprint(loss, file=f)
    assert (tmp_path / "g.txt").read_text() == text + "\n"


# --- to_dot -----------------------------------------------------------------------------------


def _parse_dot(src):
    assert src.startswith("digraph")
    assert src.rstrip().endswith("}")
    assert src.count("{") == src.count("}") == 1
    nodes = re.findall(r"^\s*(n\d+) \[label=\"((?:[^\"\\]|\\.)*)\"", src, re.M)
    edges = re.findall(r"^\s*(n\d+) -> (n\d+);", src, re.M)
    return dict(nodes), edges


def test_to_dot_is_a_digraph_with_one_node_per_graph_node():
    x, W, b, h, loss = _graph()
    src = sg.to_dot(loss)
    nodes, edges = _parse_dot(src)
    assert len(nodes) == _node_count([loss])
    from symgrad.graph import toposort
    order = toposort([loss])
    assert len(edges) == sum(len(v.inputs) for v in order)
    for a, b_ in edges:
        assert a in nodes and b_ in nodes
    labels = " ".join(nodes.values())
    for name in ["x", "W", "b", "matmul", "tanh", "(4, 3)", "(3, 2)"]:
        assert name in labels


def test_to_dot_renders_with_graphviz_if_installed(tmp_path):
    import shutil
    import subprocess
    if not shutil.which("dot"):
        pytest.skip("graphviz is not installed")
    _, _, _, _, loss = _graph()
    path = tmp_path / "g.dot"
    path.write_text(sg.to_dot(loss))
    subprocess.run(["dot", "-Tsvg", str(path), "-o", str(tmp_path / "g.svg")], check=True, timeout=30)


def test_to_dot_of_several_outputs_and_gradients():
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    y = sg.exp(x).sum()
    (g,) = sg.grad(y, x)
    nodes, edges = _parse_dot(sg.to_dot([y, g]))
    assert len(nodes) == _node_count([y, g])
    assert len(set(nodes)) == len(nodes)


def test_label_quotes_are_escaped():
    v = sg.Variable(shape=(2,), name='say "hi"')
    nodes, _ = _parse_dot(sg.to_dot(v * 2))
    assert len(nodes) == 3
