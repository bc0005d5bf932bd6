"""nn.init and the layers' default initialisation against torch's: symgrad's generator draws
PyTorch's numbers (symgrad/generator.py), so after the same manual_seed every init function
and every layer's default weights equal torch's to the bit; gains and fans exactly."""
from __future__ import annotations

import math

import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")
SHAPE = (40, 30)


def test_calculate_gain_matches_torch():
    cases = [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
             ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 0), ("selu", None)]
    for name, param in cases:
        expected = torch.nn.init.calculate_gain(name, param)
        assert sg.nn.init.calculate_gain(name, param) == pytest.approx(expected, rel=1e-15), name
    for bad in [("softmax", None), ("leaky_relu", "x")]:
        with pytest.raises(ValueError):
            torch.nn.init.calculate_gain(*bad)
        with pytest.raises(ValueError):
            sg.nn.init.calculate_gain(*bad)


def test_fans_match_torch():
    for shape in [(3, 4), (5, 2, 3), (4, 3, 2, 2)]:
        ours = sg.nn.init._calculate_fan_in_and_fan_out(sg.zeros(*shape))
        assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        sg.nn.init._calculate_fan_in_and_fan_out(sg.zeros(3))
    with pytest.raises(ValueError, match="fan_in, fan_out"):
        sg.nn.init.kaiming_uniform_(sg.zeros(3, 3), mode="fan_sideways")


def _drawn(T, fn, *args, **kwargs):
    T.manual_seed(7)
    t = T.empty(*SHAPE)
    with T.no_grad():
        out = fn(T)(t, *args, **kwargs)
    assert out is t                       # in place, returning its argument
    return t.numpy()


INITS = {
    "uniform": (lambda T: T.nn.init.uniform_, (-0.5, 2.0), {}),
    "normal": (lambda T: T.nn.init.normal_, (1.0, 0.3), {}),
    "xavier_uniform": (lambda T: T.nn.init.xavier_uniform_, (), {"gain": 2.0}),
    "xavier_normal": (lambda T: T.nn.init.xavier_normal_, (), {}),
    "kaiming_uniform": (lambda T: T.nn.init.kaiming_uniform_, (), {"a": math.sqrt(5)}),
    "kaiming_uniform_relu_fan_out": (lambda T: T.nn.init.kaiming_uniform_, (),
                                     {"mode": "fan_out", "nonlinearity": "relu"}),
    "kaiming_normal": (lambda T: T.nn.init.kaiming_normal_, (), {"nonlinearity": "relu"}),
}


@pytest.mark.parametrize("name", sorted(INITS))
def test_init_functions_draw_torchs_numbers(name):
    fn, args, kwargs = INITS[name]
    np.testing.assert_array_equal(_drawn(sg, fn, *args, **kwargs), _drawn(torch, fn, *args, **kwargs))


def test_constant_zeros_ones_eye():
    t = sg.nn.Parameter(sg.empty(2, 3))
    assert sg.nn.init.constant_(t, 0.25) is t and t.detach().numpy().tolist() == [[0.25] * 3] * 2
    assert t.requires_grad and t.is_leaf           # still a parameter, outside the graph
    assert sg.nn.init.zeros_(t).detach().numpy().sum() == 0
    assert sg.nn.init.ones_(t).detach().numpy().sum() == 6
    np.testing.assert_array_equal(sg.nn.init.eye_(t).detach().numpy(),
                                  torch.nn.init.eye_(torch.empty(2, 3)).numpy())
    d = sg.empty(4, dtype=sg.float64)
    sg.nn.init.normal_(d)
    assert d.dtype == np.float64


def _layers(T):
    T.manual_seed(0)
    lin = T.nn.Linear(64, 32)
    emb = T.nn.Embedding(30, 10, padding_idx=3)
    norm = T.nn.LayerNorm(5)
    return [v.detach().numpy() for v in (lin.weight, lin.bias, emb.weight, norm.weight, norm.bias)] + \
        [str(T.nn.Linear(2, 2).weight.dtype).split(".")[-1]]


def test_default_initialisation_is_torchs():
    ours, theirs = _layers(sg), _layers(torch)
    for a, b in zip(ours[:-1], theirs[:-1]):
        np.testing.assert_array_equal(a, b)
    assert ours[-1] == theirs[-1] == "float32"
    assert np.abs(ours[2][3]).sum() == 0          # the padding row
    sg.set_default_dtype(sg.float64)
    try:
        assert sg.nn.Linear(2, 2).weight.dtype == np.float64
    finally:
        sg.set_default_dtype(sg.float32)
    assert sg.nn.Linear(2, 2, dtype=sg.float64).bias.dtype == np.float64
