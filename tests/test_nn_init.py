"""nn.init and the layers' default initialisation. PyTorch's random numbers cannot be matched
(another generator), so the distributions are checked: bounds and moments against the formulas
torch's own functions give for the same shapes (torch's draws are checked the same way, so the
expected numbers are torch's behaviour, not ours); gains and fans against torch exactly."""
from __future__ import annotations

import math

import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")
SHAPE = (200, 300)          # 60000 draws: sample moments within a few percent


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


def _stats(T, fn, *args, **kwargs):
    t = T.empty(*SHAPE)
    with T.no_grad():
        out = fn(T)(t, *args, **kwargs)
    assert out is t                       # in place, returning its argument
    a = t.numpy().astype(np.float64)
    return a.min(), a.max(), a.mean(), a.std()


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
def test_distributions_match_torch(name):
    fn, args, kwargs = INITS[name]
    ours, theirs = _stats(sg, fn, *args, **kwargs), _stats(torch, fn, *args, **kwargs)
    lo, hi, mean, std = theirs
    spread = theirs[3]
    if "uniform" in name:                 # the same bounds, to within the gap between draws
        assert ours[0] >= lo - spread * 1e-3 and ours[1] <= hi + spread * 1e-3
        assert ours[0] < lo + spread * 1e-3 and ours[1] > hi - spread * 1e-3
    assert abs(ours[2] - mean) < 0.03 * spread
    assert ours[3] == pytest.approx(std, rel=0.03)


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


def test_seeded_draws_repeat():
    sg.manual_seed(5)
    a = sg.nn.Linear(4, 3).weight.detach().numpy().copy()
    sg.manual_seed(5)
    assert np.array_equal(sg.nn.Linear(4, 3).weight.detach().numpy(), a)


def _layer_stats(T):
    T.manual_seed(0)
    fan_in = 64
    ws, bs = [], []
    for _ in range(60):
        lin = T.nn.Linear(fan_in, 32)
        ws.append(lin.weight.detach().numpy().ravel())
        bs.append(lin.bias.detach().numpy().ravel())
    w, b = np.concatenate(ws), np.concatenate(bs)
    emb = T.nn.Embedding(300, 100, padding_idx=3).weight.detach().numpy()
    norm = T.nn.LayerNorm(5)
    return {"w": (w.min(), w.max(), w.std()), "b": (b.min(), b.max(), b.std()),
            "emb": (emb.mean(), emb.std()), "pad": np.abs(emb[3]).sum(),
            "norm": (norm.weight.detach().numpy().tolist(), norm.bias.detach().numpy().tolist()),
            "dtype": str(T.nn.Linear(2, 2).weight.dtype).split(".")[-1]}


def test_default_initialisation_draws_from_torch_distributions():
    ours, theirs = _layer_stats(sg), _layer_stats(torch)
    bound = 1 / math.sqrt(64)             # kaiming_uniform(a=sqrt(5)) and the bias's range
    for key in ("w", "b"):
        lo, hi, std = ours[key]
        assert -bound <= lo < -0.98 * bound and 0.98 * bound < hi <= bound
        assert std == pytest.approx(theirs[key][2], rel=0.05)
        assert theirs[key][0] >= -bound and theirs[key][1] <= bound
    assert abs(ours["emb"][0]) < 0.02 and ours["emb"][1] == pytest.approx(theirs["emb"][1], rel=0.03)
    assert ours["pad"] == theirs["pad"] == 0
    assert ours["norm"] == theirs["norm"] and ours["dtype"] == theirs["dtype"] == "float32"
    sg.set_default_dtype(sg.float64)
    try:
        assert sg.nn.Linear(2, 2).weight.dtype == np.float64
    finally:
        sg.set_default_dtype(sg.float32)
    assert sg.nn.Linear(2, 2, dtype=sg.float64).bias.dtype == np.float64
