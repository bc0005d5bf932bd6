"""Random numbers as PyTorch draws them (symgrad/generator.py): after `manual_seed`, each
creation function, in-place fill, nn.init function and default layer initialisation gives
PyTorch's numbers to the bit, and the generator's state carries across calls as PyTorch's
does. Each case is written once against a module `T` and run with torch and with symgrad."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import symgrad as sg


def _arrays(values):
    return [np.asarray(v.detach().numpy() if hasattr(v, "detach") else v) for v in values]


def _same(case):
    ours, theirs = _arrays(case(sg)), _arrays(case(torch))
    assert len(ours) == len(theirs)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a.dtype == b.dtype and a.shape == b.shape, (k, a.dtype, b.dtype, a.shape, b.shape)
        assert np.array_equal(a, b), (k, a, b)


@pytest.mark.parametrize("seed", [0, 1729, 2 ** 40 + 7])
def test_creation_functions_draw_pytorchs_numbers(seed):
    def case(T):
        T.manual_seed(seed)
        return [T.rand(2, 3), T.rand(4, dtype=T.float64), T.randn(5), T.randn(3, dtype=T.float64),
                T.randn(20), T.randn(4, 9), T.randn(37, dtype=T.float64), T.randn(16),
                T.randint(3, 10, (4,)), T.randint(10, (2, 2)), T.randint(0, 2 ** 40, (3,)),
                T.randint(-5, 5, (6,), dtype=T.int32), T.randperm(9), T.randperm(1), T.randperm(0),
                T.normal(2.0, 3.0, size=(3,)), T.normal(-1.0, 0.5, size=(40,)),
                T.rand_like(T.zeros(3, dtype=T.float64)), T.randn_like(T.zeros(2, 2)), T.rand(size=(2,))]
    _same(case)


def test_in_place_fills_and_generators():
    def case(T):
        T.manual_seed(5)
        x = T.empty(3, 4)
        x.uniform_(-0.5, 0.5)
        y = T.zeros(50)
        y.normal_(0.5, 2.5)
        small = T.zeros(3, dtype=T.float64)
        small.normal_(1.0, 3.0)
        z = T.zeros(5, dtype=T.int64)
        z.random_(3, 9)
        g = T.Generator().manual_seed(11)
        h = T.Generator()                       # a new Generator's default seed
        return [x, y, small, z, T.rand(3, generator=g), T.randn(18, generator=g), T.rand(2, generator=h),
                T.randint(0, 4, (3,), generator=g), T.rand(2)]
    _same(case)


def test_dropout_and_bernoulli_draw_pytorchs_masks():
    def case(T):
        T.manual_seed(4)
        x = T.randn(40)
        out = [T.nn.functional.dropout(x, 0.3), T.nn.Dropout(0.5)(x),
               T.nn.functional.dropout(x, 0.1, training=False),
               T.bernoulli(T.full((9,), 0.4)), T.bernoulli(T.rand(3, 4, dtype=T.float64)),
               T.bernoulli(T.zeros(5), p=0.7)]
        y = T.zeros(8)
        y.bernoulli_(0.25)
        return out + [y]
    _same(case)


def test_normal_samples_pair_up_across_calls():
    """Fewer than 16 normals come in float64 Box-Muller pairs; the second of a pair waits in
    the generator for the next call, as in PyTorch."""
    def case(T):
        T.manual_seed(7)
        return [T.randn(3), T.randn(3), T.randn(1), T.randn(17), T.randn(1, dtype=T.float64)]
    _same(case)


def test_layers_and_nn_init_start_from_pytorchs_weights():
    def case(T):
        T.manual_seed(0)
        lin = T.nn.Linear(5, 3)
        seq = T.nn.Sequential(T.nn.Linear(4, 8), T.nn.Tanh(), T.nn.Linear(8, 2))
        emb = T.nn.Embedding(6, 4)
        w = T.empty(3, 20)
        T.nn.init.xavier_normal_(w)
        v = T.empty(4, 4, dtype=T.float64)
        T.nn.init.kaiming_uniform_(v, a=0.1)
        u = T.empty(30)
        T.nn.init.normal_(u, 1.0, 0.1)
        return [lin.weight, lin.bias, *[p for p in seq.parameters()], emb.weight, w, v, u]
    _same(case)


def test_seed_state_and_errors_follow_pytorch():
    def case(T):
        T.manual_seed(3)
        state = T.get_rng_state()
        first = T.rand(4)
        T.set_rng_state(state)
        again = T.rand(4)
        T.manual_seed(-5)
        return [first, again, np.array(T.initial_seed(), dtype=np.uint64), T.rand(2),
                np.array(T.random.initial_seed(), dtype=np.uint64)]
    _same(case)
    for T in (torch, sg):
        with pytest.raises(RuntimeError):
            T.randint(5, 5, (2,))
        with pytest.raises(RuntimeError):
            T.normal(0.0, -1.0, size=(2,))
    # a new Generator starts from PyTorch's default seed; a fresh process from a fresh one
    assert sg.Generator().initial_seed() == torch.Generator().initial_seed()
    import subprocess
    import sys
    seeds = {subprocess.run([sys.executable, "-c", "import symgrad; print(symgrad.initial_seed())"],
                            capture_output=True, text=True, timeout=120, check=True).stdout for _ in range(2)}
    assert len(seeds) == 2, seeds


def test_a_generator_pickles_with_its_state():
    g = sg.Generator().manual_seed(42)
    sg.rand(2, generator=g)                      # mid-stream, and a normal kept for the next draw
    sg.randn(1, generator=g)
    h = pickle.loads(pickle.dumps(g))
    assert np.array_equal(sg.randn(5, generator=g).numpy(), sg.randn(5, generator=h).numpy())


def test_in_place_fill_of_a_leaf_that_requires_grad_raises_outside_no_grad():
    for T in (torch, sg):
        w = T.zeros(3, requires_grad=True)
        with pytest.raises(RuntimeError):
            w.uniform_()
        with T.no_grad():
            w.uniform_()
        assert (w.detach().numpy() >= 0).all() and (w.detach().numpy() < 1).all()
