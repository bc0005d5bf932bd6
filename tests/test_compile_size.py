"""How much C a compiled function is, counted (never timed): the C compiler's run is most of a
cold compile, so the generated module must grow with the distinct work of a graph, not with
its repetitions. A nest computed again over other buffers (a layer, an RNN step, a stretch of
a long chain) is one static function called in each place (symgrad/codegen/outline.py), and
backward runs value_and_grad's code rather than a copy of it (compile.Function.share). Every
result is compared with the reference interpreter."""
from __future__ import annotations

import re

import numpy as np

import symgrad as sg
from compile_helpers import check_compiled


def _mlp(layers, width=16, batch=4):
    x = sg.Variable(shape=(batch, width), name="x")
    params, h = [], x
    for k in range(layers):
        w = sg.Variable(shape=(width, width), name=f"w{k}", requires_grad=True)
        b = sg.Variable(shape=(width,), name=f"b{k}", requires_grad=True)
        params += [w, b]
        h = sg.tanh(h @ w + b)
    return [x] + params, (h * h).mean()


def _chain(steps, size=8):
    x0 = sg.Variable(shape=(size,), name="x", requires_grad=True)
    x = x0
    for _ in range(steps):
        x = sg.sin(x) * 1.0001 + 0.5
    return [x0], x.sum()


def _values(inputs, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(v.shape) * 0.5).astype(np.float32) for v in inputs]


def _counts(fn):
    source = fn.forward_fn.module_source
    return {"nest functions": len(re.findall(r"^static __attribute__\(\(noinline\)\) void sg_nest_\d+\(",
                                             source, flags=re.M)),
            "loops": len(re.findall(r"for \(int64_t \w+ = 0;", source)),
            "lines": source.count("\n")}


def test_repeated_layers_are_compiled_once():
    """An MLP of 12 layers has as many loop nests in its C as one of 3: each layer's nests
    (and their gradients') are functions called once per layer, and its lines grow by the
    calls alone (a few per layer), with results as the interpreter's."""
    small, large = (sg.compile(*_mlp(n)) for n in (3, 12))
    a, b = _counts(small), _counts(large)
    assert a["nest functions"] >= 2
    assert b["nest functions"] == a["nest functions"]
    assert b["loops"] == a["loops"]
    assert (b["lines"] - a["lines"]) / 9 < 60     # per added layer: calls, declarations, comments
    inputs, loss = _mlp(12)
    check_compiled(inputs, loss, _values(inputs), grad_outputs=None)


def test_a_long_chain_generates_code_linear_in_its_length():
    """A chain of elementwise ops, long enough that its nests are cut at NEST_MAX_LETS, has
    a constant number of distinct nests: its C grows linearly (by calls), and four times the
    chain is well under four times the lines."""
    short, long = (sg.compile(*_chain(n)) for n in (300, 1200))
    a, b = _counts(short), _counts(long)
    assert b["nest functions"] <= a["nest functions"] + 2
    assert b["loops"] <= a["loops"] + 4
    assert b["lines"] < 2.5 * a["lines"]
    inputs, loss = _chain(1200)
    check_compiled(inputs, loss, _values(inputs), grad_outputs=None)


def test_backward_runs_value_and_grads_code():
    """backward's entry point calls value_and_grad (the loss goes to scratch): its section of
    the module is a call, its .source shows both, and its gradients are value_and_grad's,
    bit for bit."""
    inputs, loss = _mlp(2)
    fn = sg.compile(inputs, loss)
    source = fn.backward.source
    start = source.index("int symgrad_backward(")
    body = source[source.index("{", start):source.index("\n}\n", start)]
    assert "symgrad_value_and_grad(" in body and "for (" not in body
    assert "int symgrad_value_and_grad(" in source
    module = fn.forward_fn.module_source
    for name in ("symgrad_value_and_grad", "symgrad_backward"):      # each defined once
        assert len(re.findall(rf"^int {name}\(\n", module, flags=re.M)) == 1
    values = _values(inputs)
    value, grads = fn.value_and_grad(*values)
    for g, h in zip(fn.backward(*values), grads):
        np.testing.assert_array_equal(g, h)
    check_compiled(inputs, loss, values, grad_outputs=None)
