"""The pass pipeline (symgrad/passes): its documented order, each rewrite switchable by name
with results equal to the interpreter's either way, the graph printable after any pass, and
the settings table (symgrad/config.py) that SYMGRAD_DISABLE_PASSES and the rest live in."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad import config, passes
from symgrad.codegen.ir import format_graph, lower
from symgrad.variable import apply

REPO = Path(__file__).resolve().parents[1]
F64 = sg.float64
SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -2.0, 4.0, 0.25, 3.0,
                     -0.5, 100.0, -100.0])

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the interpreter meets inf and NaN


def same_bits(actual, expected, what=""):
    """Equal values, NaN where NaN, and the same sign on every zero."""
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape and a.dtype == e.dtype, what
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg=f"{what}: NaN positions")
    ok = ~np.isnan(e)
    np.testing.assert_array_equal(a[ok], e[ok], err_msg=what)
    np.testing.assert_array_equal(np.signbit(a[ok]), np.signbit(e[ok]), err_msg=f"{what}: signs of zeros")


def _lit(v):
    return sg.tensor(v, dtype=F64)


def _graph():
    """One output (at least) for every rewrite, named after it. Sums and products see small
    exact numbers only, so that any order of adding gives the same bits."""
    n = SPECIALS.size
    x = sg.Variable(shape=(n,), dtype=F64, name="x")
    y = sg.Variable(shape=(n,), dtype=F64, name="y")
    M = sg.Variable(shape=(3, 4), dtype=F64, name="M")
    outs = {     # each rewrite's name: outputs where it applies, and where it must not
        "fold_constants": [_lit(2.0) * 3.0 + x],
        "literal_operands": [x * sg.broadcast_to(_lit(2.0), (n,))],
        "stop_gradient": [sg.stop_gradient(x) - y],
        "add_negative_zero": [x + (-0.0), (-0.0) + x, x + 0.0, 0.0 + x],
        "sub_zero": [x - 0.0, x - (-0.0)],
        "mul_one": [x * 1.0, 1.0 * x],
        "div_one": [x / 1.0, 1.0 / x],
        "where_known_condition": [sg.where(sg.tensor(True), x, y), sg.where(sg.tensor(False), x, 0.0)],
        "pow_one": [x ** 1.0],
        "noop_reshape": [apply("reshape", y, shape=y.shape) * 2.0],
        "reshape_of_reshape": [x.reshape(4, 4).reshape(2, 8)],
        "noop_broadcast": [apply("broadcast_to", y, shape=y.shape) - x],
        "permute_of_permute": [M.T.T * 2.0],
        "pow_two": [x ** 2],
        "pow_half": [sg.pow(x, _lit(0.5))],
        "matmul_literal_to_sum": [sg.broadcast_to(_lit(2.0), (2, 3)) @ M,
                                  M.T @ sg.broadcast_to(_lit(1.0), (3, 2))],
        "reduce_in_memory_order": [M.T.sum(0), M.T.amax(1)],
        "permute_of_matmul": [(M @ (M.T + 1.0)).T, (M.T @ M).T - 1.0],
        "matmul_batch_as_rows": [x.reshape(2, 2, 4) @ M.T, (x.reshape(2, 2, 4) * 2.0) @ (M.T - 1.0),
                                 x.reshape(2, 4, 2).transpose(1, 2) @ M.T],
        "sum_of_batch_products": [(x.reshape(2, 2, 4).transpose(1, 2) @ (y.reshape(2, 2, 4) * 2.0)).sum(0),
                                  (x.reshape(2, 4, 2) @ y.reshape(2, 2, 4)).sum(0)],
        "sum_of_products": [x.reshape(2, 8).T @ y.reshape(2, 8) + (x.reshape(2, 8) * 2.0).T @ (y.reshape(2, 8) - 1.0),
                            M.T @ M + (M * 2.0).T @ M],       # (3 rows a batch: not under 4 * 4 / 8)
    }
    arrays = [SPECIALS, np.random.default_rng(3).permutation(SPECIALS),
              np.array([[1.0, 2.0, -3.0, 0.5], [4.0, -1.0, 2.0, 8.0], [-0.5, 3.0, 1.0, -2.0]])]
    return [x, y, M], outs, arrays


def _flat(groups):
    """Labels (rewrite and position) and outputs, in one list each."""
    labels = [f"{name}[{k}]" for name, group in groups.items() for k in range(len(group))]
    return labels, [o for group in groups.values() for o in group]


# --- the pipeline --------------------------------------------------------------------------------

def _documented_table():
    """(phase, rewrite) rows of the table in symgrad/passes/__init__.py's docstring: columns
    apart by two spaces or more, the phase written on its first row only."""
    lines = passes.__doc__.split("    phase ", 1)[1].split("\n\n")[0].splitlines()[1:]
    rows, phase = [], None
    for line in lines:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 3:
            phase = cells.pop(0)
        rows.append((phase, cells[0]))
    return rows


def test_the_pipeline_is_the_documented_table():
    table = [(p.name, r.name) for p in passes.PHASES for r in p.rewrites]
    assert [p.name for p in passes.PHASES] == ["fold", "canonicalize", "specialize"]
    assert _documented_table() == [(passes.LOWER, "(always runs)")] + table
    assert passes.GROUPS == {"algebra": ("canonicalize", "specialize")}
    assert len({name for _, name in table}) == len(table)
    for r in passes.rewrites():
        assert r.doc, f"{r.name} says what identity it applies"
    _, groups, _ = _graph()
    assert list(groups) == [name for _, name in table], "the test graph has outputs for every rewrite"


def test_each_rewrite_applies_and_is_switched_off_by_its_name(monkeypatch):
    """Lowering only (no C): with one rewrite off, the graph differs from the fully rewritten
    one, so that rewrite applied to this graph and its name switched it off."""
    inputs, groups, _ = _graph()
    _, outs = _flat(groups)
    monkeypatch.delenv("SYMGRAD_DISABLE_PASSES", raising=False)
    full = format_graph(lower(inputs, outs).outputs)
    for name in groups:
        monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", name)
        assert format_graph(lower(inputs, outs).outputs) != full, name
    monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", "fold,algebra")
    unrewritten = format_graph(lower(inputs, outs, after="lower").outputs)
    assert format_graph(lower(inputs, outs).outputs) == unrewritten


@pytest.mark.parametrize("batch", range(4))
def test_results_equal_the_interpreter_with_rewrites_off(batch, monkeypatch):
    """Every rewrite off by its name, a few at a time (one compile each), and, in the first
    batch, with all of them and with none: the same bits as the interpreter."""
    inputs, groups, arrays = _graph()
    labels, outs = _flat(groups)
    settings = [",".join(list(groups)[batch::4])] + (["", "fold,algebra"] if batch == 0 else [])
    expected = sg.compile(inputs, outs, backend="interp")(*arrays)
    for disabled in settings:
        monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", disabled)
        got = sg.compile(inputs, outs, backend="c")(*arrays)
        for label, a, e in zip(labels, got, expected):
            same_bits(a, e, f"{label} with {disabled or 'nothing'} off")


def test_a_rewrite_that_applies_another_respects_its_switch(monkeypatch):
    """matmul_literal_to_sum moves its sum to memory order itself: not when that is off."""
    M = sg.Variable(shape=(4, 3), dtype=F64, name="M")
    out = sg.broadcast_to(_lit(1.0), (2, 3)) @ M.T
    monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", "")
    assert "permute" in format_graph(lower([M], [out]).outputs)          # sum, then permute
    monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", "reduce_in_memory_order")
    text = format_graph(lower([M], [out]).outputs).splitlines()
    assert "sum" in text[1] and "permute" in text[2]                     # sum of the permute


def test_a_transposed_product_is_computed_transposed_only_where_nothing_else_reads_it(monkeypatch):
    """(a @ b).T is b.T @ a.T when the product has no other reader; read also as it is, the
    product is kept (one matrix product, not two). Either way the numbers are numpy's."""
    monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", "")
    M = sg.Variable(shape=(3, 4), dtype=F64, name="M")
    A = np.arange(12.0).reshape(3, 4) / 4 - 1
    alone = (M @ (M.T + 1.0)).T * 2.0
    text = format_graph(lower([M], [alone]).outputs)
    assert text.count("matmul") == 1 and text.splitlines()[1].strip().startswith("#1 matmul")
    product = M @ (M.T + 1.0)
    shared = [product.T * 2.0, product + 1.0]
    text = format_graph(lower([M], shared).outputs)
    assert [line for line in text.splitlines() if "matmul" in line and "see above" not in line] == \
        ["    #2 matmul  (3, 3) float64"], text
    expected = (A @ (A.T + 1.0)).T * 2.0
    for outs in ([alone], shared):
        got = sg.compile([M], outs)(A)
        np.testing.assert_array_equal(got[0] if isinstance(got, list) else got, expected)


# --- printing after a pass -----------------------------------------------------------------------

def _times_one():
    x = sg.Variable(shape=(3,), name="x", requires_grad=True)
    return x, ((x * 1.0) * (x + 2.0)).sum()


def test_debugprint_after_a_pass(capsys):
    x, loss = _times_one()
    fn = sg.compile([x], loss)
    lowered = sg.debugprint(fn, after="lower")
    before = sg.debugprint(fn, after="fold")
    after = sg.debugprint(fn, after="canonicalize")
    assert capsys.readouterr().out == "\n".join([lowered, before, after]) + "\n"
    assert before == lowered                          # nothing to fold
    assert "mul" in before and "1.0" in before        # x * 1 before canonicalize ...
    assert "1.0" not in after                         # ... gone after it
    assert after.count("mul") == before.count("mul") - 1
    assert "'x' input 0  (3,) float32" in after
    assert sg.debugprint(fn.forward, after="canonicalize") == after
    assert sg.debugprint(loss, after="canonicalize") == after    # plain outputs: leaves are the inputs
    for part in (fn.backward, fn.value_and_grad):
        assert "1.0" in sg.debugprint(part, after="lower")
        assert "input 0" in sg.debugprint(part, after="mul_one")


def test_debugprint_without_after_prints_the_users_graph():
    x, loss = _times_one()
    text = sg.debugprint(sg.compile([x], loss), file=io.StringIO())
    assert "input x" in text and "1.0" in text         # the Variables, as built


def test_print_after_prints_to_stderr_while_compiling(monkeypatch, capsys):
    x, loss = _times_one()
    sg.compile([x], loss, wrt=[])                       # forward only; then it is in the graph index
    capsys.readouterr()
    monkeypatch.setenv("SYMGRAD_PRINT_AFTER", "fold,canonicalize")
    fn = sg.compile([x], loss, wrt=[])                  # printed although compiled before
    err = capsys.readouterr().err
    fold, canon = err.split("symgrad: the graph after canonicalize:\n")
    assert fold.startswith("symgrad: the graph after fold:\n")
    assert "1.0" in fold and "1.0" not in canon
    assert canon.strip() == sg.debugprint(fn, after="canonicalize")


def test_unknown_pass_names_are_errors_that_list_the_known_ones(monkeypatch):
    x, loss = _times_one()
    monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", "fold,mul_once")
    with pytest.raises(ValueError, match=r"SYMGRAD_DISABLE_PASSES: no pass is called 'mul_once'.*mul_one"):
        sg.compile([x], loss)
    monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", "")
    with pytest.raises(ValueError, match=r"after: no pass is called 'fuse'.*canonicalize"):
        sg.debugprint(loss, after="fuse")
    monkeypatch.setenv("SYMGRAD_PRINT_AFTER", "algebr")
    with pytest.raises(ValueError, match=r"SYMGRAD_PRINT_AFTER: no pass is called 'algebr'.*algebra"):
        sg.compile([x], loss)


# --- the settings table --------------------------------------------------------------------------

def test_every_setting_named_in_the_code_is_in_the_table():
    named = set()
    for path in list((REPO / "symgrad").rglob("*.py")) + list((REPO / "templates").rglob("*.j2")):
        named |= set(re.findall(r"\bSYMGRAD_[A-Z_]+[A-Z]\b", path.read_text()))
    named -= {"SYMGRAD_NVCC_RELEASE"}                  # a macro the nvcc flags define, not a setting
    assert named <= set(config.SETTINGS), f"not in symgrad/config.py: {sorted(named - set(config.SETTINGS))}"
    text = config.describe()
    for s in config.SETTINGS.values():
        assert s.meaning and s.name in text


def test_settings_are_read_when_used(monkeypatch):
    monkeypatch.setenv("SYMGRAD_OPENMP", "0")
    assert config.openmp() is False
    monkeypatch.setenv("SYMGRAD_OPENMP", "1")
    assert config.openmp() is True
    monkeypatch.setenv("SYMGRAD_DISABLE_PASSES", " fold, algebra ,")
    assert config.disabled_passes() == ("fold", "algebra")
    monkeypatch.delenv("SYMGRAD_OPT", raising=False)
    assert config.opt_flags() is None
    monkeypatch.setenv("SYMGRAD_OPT", "-O1 -g")
    assert config.opt_flags() == ["-O1", "-g"]


def test_the_index_key_holds_the_settings_that_change_code(monkeypatch):
    from symgrad.build import _knobs
    before = _knobs()
    for name, value in (("SYMGRAD_FAST_CALL", "0"), ("SYMGRAD_PRINT_AFTER", "fold"),
                        ("SYMGRAD_EAGER_BACKEND", "interp")):
        monkeypatch.setenv(name, value)
    assert _knobs() == before                          # how calls run, what is printed
    for s in config.SETTINGS.values():
        if s.keyed:
            monkeypatch.setenv(s.name, "changed")
            assert _knobs() != before, s.name
            before = _knobs()
