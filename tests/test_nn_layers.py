"""Every layer and loss of symgrad.nn against PyTorch's: a program written once against a
module `T` builds a model, loads the same weights into it (numpy arrays for symgrad, tensors
for torch), runs it on the same inputs and returns the outputs and the gradients of the input
and of every parameter by name. float64 must agree to rtol 1e-6, float32 to 1e-4.

Most programs run backward() on the numpy interpreter (the parity of the layers is the point,
and a compile per program would slow the suite); `test_compiled_models` runs two models that
use every layer on the compiled C, as users run them."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")

PROGRAMS = {}
RTOL = {"float64": 1e-6, "float32": 1e-4}


def program(fn):
    PROGRAMS[fn.__name__] = fn
    return fn


def numbers(v):
    return v.detach().numpy() if isinstance(v, torch.Tensor) else np.asarray(v.detach().numpy())


class Run:
    """What a program needs of its module T: the same random numbers for both runs, weights
    loaded by name, and the results gathered."""

    def __init__(self, T, dtype, seed):
        self.T, self.dtype = T, dtype
        self.rng = np.random.default_rng(seed)
        self.out = {}

    def arr(self, *shape, low=-1.0, high=1.0):
        return self.rng.uniform(low, high, shape).astype(self.dtype)

    def leaf(self, *shape, **kw):
        return self.T.tensor(self.arr(*shape, **kw), requires_grad=True)

    def const(self, a):
        return self.T.tensor(np.asarray(a))

    def model(self, module):
        """The module in this run's dtype, with weights drawn here (by state_dict key, in order)."""
        module = module.to(getattr(self.T, self.dtype))
        state = {k: self.arr(*v.shape) for k, v in module.state_dict().items()}
        if self.T is torch:
            state = {k: torch.from_numpy(v) for k, v in state.items()}
        result = module.load_state_dict(state)
        assert not result.missing_keys and not result.unexpected_keys
        return module

    def backward(self, model, loss, **inputs):
        """Record the loss, the inputs' gradients and the parameters' by name."""
        loss.backward()
        self.out["loss"] = numbers(loss)
        for name, x in inputs.items():
            self.out[f"grad {name}"] = numbers(x.grad)
        for name, p in model.named_parameters():
            self.out[f"grad {name}"] = numbers(p.grad)
        return self.out

    def weighted_sum(self, y):
        """A scalar of `y` whose gradient is not all ones (so that every element counts)."""
        return (y * self.const(self.arr(*y.shape))).sum()


def run(name, T, dtype):
    return PROGRAMS[name](Run(T, dtype, sum(map(ord, name))))


# --- layers ----------------------------------------------------------------------------------------


@program
def linear(r):
    nn = r.T.nn
    m = r.model(nn.Linear(4, 3))
    x = r.leaf(5, 4)
    y = m(x)
    r.out["y"] = numbers(y)
    return r.backward(m, r.weighted_sum(y), x=x)


@program
def linear_no_bias_batched(r):
    nn = r.T.nn
    m = r.model(nn.Linear(4, 2, bias=False))
    x = r.leaf(2, 3, 4)
    y = m(x)
    r.out["y"] = numbers(y)
    return r.backward(m, r.weighted_sum(y), x=x)


@program
def mlp_activations(r):
    nn = r.T.nn
    m = r.model(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 6),
                              nn.Sigmoid(), nn.Linear(6, 3), nn.LeakyReLU(0.2), nn.SiLU()))
    x = r.leaf(7, 4, low=-2, high=2)
    y = m(x)
    r.out["y"] = numbers(y)
    return r.backward(m, r.weighted_sum(y), x=x)


@program
def gelu_exact(r):
    nn = r.T.nn
    m = r.model(nn.Sequential(nn.Linear(3, 5), nn.GELU()))
    x = r.leaf(6, 3, low=-3, high=3)
    y = m(x)
    r.out["y"] = numbers(y)
    r.out["plain"] = numbers(nn.functional.gelu(r.const(np.linspace(-6, 6, 25).astype(r.dtype))))
    return r.backward(m, r.weighted_sum(y), x=x)


@program
def gelu_tanh(r):
    nn = r.T.nn
    m = r.model(nn.Sequential(nn.Linear(3, 5), nn.GELU(approximate="tanh")))
    x = r.leaf(6, 3, low=-3, high=3)
    y = m(x)
    r.out["y"] = numbers(y)
    return r.backward(m, r.weighted_sum(y), x=x)


@program
def softmax_layers(r):
    nn = r.T.nn
    m = r.model(nn.Sequential(nn.Linear(4, 5), nn.Softmax(dim=1)))
    x = r.leaf(3, 4, low=-3, high=3)
    y = m(x)
    z = nn.LogSoftmax(dim=-1)(x * 2)
    r.out["y"], r.out["z"] = numbers(y), numbers(z)
    return r.backward(m, r.weighted_sum(y) + r.weighted_sum(z), x=x)


@program
def layer_norm(r):
    nn = r.T.nn
    m = r.model(nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6)))
    x = r.leaf(3, 4, low=-2, high=2)
    y = m(x)
    r.out["y"] = numbers(y)
    return r.backward(m, r.weighted_sum(y), x=x)


@program
def layer_norm_two_dims_no_affine(r):
    nn = r.T.nn
    norm = nn.LayerNorm((2, 3), eps=1e-3)
    bare = nn.LayerNorm([3], elementwise_affine=False)
    m = r.model(nn.ModuleList([norm, bare]))
    x = r.leaf(4, 2, 3, low=-2, high=2)
    y = m[1](m[0](x) * 3)
    r.out["y"] = numbers(y)
    return r.backward(m, r.weighted_sum(y), x=x)


@program
def layer_norm_without_bias(r):
    nn = r.T.nn
    m = r.model(nn.LayerNorm(5, bias=False))
    r.out["parameters"] = np.array(len(list(m.parameters())))     # the weight only
    x = r.leaf(3, 5, low=-2, high=2)
    y = m(x)
    r.out["y"] = numbers(y)
    return r.backward(m, r.weighted_sum(y), x=x)


@program
def embedding(r):
    nn = r.T.nn
    m = r.model(nn.Embedding(10, 4))
    idx = r.const(np.array([[0, 3, 9], [3, 3, 1]], dtype=np.int64))
    y = m(idx)
    r.out["y"] = numbers(y)
    return r.backward(m, r.weighted_sum(y))


@program
def embedding_padding(r):
    nn = r.T.nn
    m = r.model(nn.Embedding(6, 3, padding_idx=2))
    idx = r.const(np.array([2, 0, 2, 5, 1], dtype=np.int64))
    y = nn.functional.embedding(idx, m.weight, padding_idx=2) + m(idx)
    r.out["y"] = numbers(y)
    return r.backward(m, r.weighted_sum(y))


@program
def flatten_identity_dropout_eval(r):
    nn = r.T.nn
    m = r.model(nn.Sequential(nn.Flatten(), nn.Identity(), nn.Dropout(0.3), nn.Linear(12, 2)))
    m.eval()
    x = r.leaf(2, 3, 4)
    y = m(x)
    r.out["y"] = numbers(y)
    r.out["flat01"] = np.array(nn.Flatten(0, 1)(x).shape)
    return r.backward(m, r.weighted_sum(y), x=x)


class Blocks:
    """A custom Module with a ModuleList and a ModuleDict, made for either T."""

    @staticmethod
    def make(T):
        nn = T.nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
                self.heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Linear(4, 3)})
                self.scale = nn.Parameter(T.ones(4))

            def forward(self, x):
                for block in self.blocks:
                    x = T.tanh(block(x)) * self.scale
                return self.heads["a"](x).sum(1) + self.heads["b"](x).mean(1)

        return Net()


@program
def custom_module(r):
    m = r.model(Blocks.make(r.T))
    x = r.leaf(5, 4)
    y = m(x)
    r.out["y"] = numbers(y)
    return r.backward(m, r.weighted_sum(y), x=x)


# --- losses -------------------------------------------------------------------------------------------

def _loss_program(make_loss, target, shape=(4, 3)):
    def prog(r):
        nn = r.T.nn
        m = r.model(nn.Linear(5, shape[-1]))
        x = r.leaf(*shape[:-1], 5, low=-2, high=2)
        out = {}
        total = 0
        for reduction in ("mean", "sum", "none"):
            loss = make_loss(nn, reduction)(m(x), target(r))
            out[reduction] = numbers(loss)
            total = total + (r.weighted_sum(loss) if reduction == "none" else loss)
        r.out.update(out)
        return r.backward(m, total, x=x)
    return prog


def _labels(*shape, n=3, seed=0):
    labels = np.random.default_rng(seed).integers(0, n, shape)
    return lambda r: r.const(labels)


PROGRAMS["mse_loss"] = _loss_program(lambda nn, red: nn.MSELoss(reduction=red),
                                     lambda r: r.const(r.arr(4, 3)))
PROGRAMS["l1_loss"] = _loss_program(lambda nn, red: nn.L1Loss(reduction=red), lambda r: r.const(r.arr(4, 3)))
PROGRAMS["cross_entropy"] = _loss_program(lambda nn, red: nn.CrossEntropyLoss(reduction=red), _labels(4))
PROGRAMS["cross_entropy_probabilities"] = _loss_program(
    lambda nn, red: nn.CrossEntropyLoss(reduction=red),
    lambda r: r.const((lambda p: p / p.sum(1, keepdims=True))(r.arr(4, 3, low=0.1, high=1))))
PROGRAMS["nll_loss"] = _loss_program(
    lambda nn, red: (lambda x, t: nn.NLLLoss(reduction=red)(nn.functional.log_softmax(x, dim=1), t)),
    _labels(4))
PROGRAMS["bce_with_logits"] = _loss_program(lambda nn, red: nn.BCEWithLogitsLoss(reduction=red),
                                            lambda r: r.const(r.arr(4, 3, low=0, high=1)))


@program
def losses_with_spatial_dims_and_weights(r):
    nn, F = r.T.nn, r.T.nn.functional
    x = r.leaf(2, 4, 3, low=-2, high=2)               # (N, C, d)
    labels = r.const(np.array([[0, 3, 1], [2, 2, 0]], dtype=np.int64))
    ce = F.cross_entropy(x, labels, reduction="none")
    nll = F.nll_loss(F.log_softmax(x, 1), labels)
    logits, t = r.leaf(3, 4), r.const(r.arr(3, 4, low=0, high=1))
    bce = nn.BCEWithLogitsLoss(pos_weight=r.const(r.arr(4, low=0.5, high=2)))(logits, t)
    bce_w = F.binary_cross_entropy_with_logits(logits, t, weight=r.const(r.arr(3, 4, low=0, high=1)),
                                               reduction="sum")
    unbatched = F.cross_entropy(x[0, :, 0], labels[0, 1])
    r.out.update(ce=numbers(ce), nll=numbers(nll), bce=numbers(bce), bce_w=numbers(bce_w),
                 unbatched=numbers(unbatched))
    total = r.weighted_sum(ce) + nll + bce + bce_w + unbatched
    return r.backward(nn.Module(), total, x=x, logits=logits)


# --- the checks ---------------------------------------------------------------------------------------


def _compare(ours, theirs, dtype, what):
    assert ours.keys() == theirs.keys(), what
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-2,
                                   err_msg=f"{what}: {key}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_same_numbers_as_torch(name, dtype, interp_backward):
    _compare(run(name, sg, dtype), run(name, torch, dtype), dtype, name)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["mlp_activations", "custom_module"])
def test_compiled_models(name, dtype):
    # backward() on the compiled C (the default), for the models that use most layers.
    _compare(run(name, sg, dtype), run(name, torch, dtype), dtype, name)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_transformer_block(dtype):
    def prog(T):
        r = Run(T, dtype, 7)
        nn = T.nn
        m = r.model(nn.ModuleDict({"emb": nn.Embedding(7, 6), "norm": nn.LayerNorm(6),
                                   "ff": nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 6)),
                                   "out": nn.Linear(6, 7)}))
        idx = r.const(np.array([[1, 2, 3], [6, 0, 2]], dtype=np.int64))
        h = m["emb"](idx)
        h = h + m["ff"](m["norm"](h))
        logits = m["out"](h).reshape(6, 7)
        loss = nn.CrossEntropyLoss()(logits, r.const(np.array([2, 3, 4, 0, 2, 1], dtype=np.int64)))
        return r.backward(m, loss)
    _compare(prog(sg), prog(torch), dtype, "transformer block")


def test_torch_initial_weights_copied_as_numpy():
    # As the parity tests of issue 13 do it: torch's own initial weights, as numpy arrays.
    torch.manual_seed(3)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GELU(), torch.nn.LayerNorm(4),
                                 torch.nn.Linear(4, 2)).double()
    ours = sg.nn.Sequential(sg.nn.Linear(3, 4), sg.nn.GELU(), sg.nn.LayerNorm(4), sg.nn.Linear(4, 2)).double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(ours(sg.tensor(x)).detach().numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-6)
    for (k, a), (k2, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert k == k2 and a.dtype == np.float64
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_erf_matches_torch():
    a = np.concatenate([np.linspace(-6, 6, 101), [0.0, -0.0, 1e-300, 30.0, -30.0]])
    for dt in ("float64", "float32"):
        x = sg.tensor(a.astype(dt), requires_grad=True)
        t = torch.tensor(a.astype(dt), requires_grad=True)
        y, u = sg.erf(x), torch.erf(t)
        np.testing.assert_allclose(y.detach().numpy(), u.detach().numpy(), rtol=RTOL[dt] / 10, atol=1e-7)
        y.sum().backward()
        u.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=RTOL[dt], atol=1e-30)
    assert sg.erf(sg.tensor([0, 1])).dtype == np.float32        # integers become floats
    assert sg.gradcheck(lambda v: sg.erf(sg.erf(v) * 2.0), [sg.tensor(a[:30] / 3, requires_grad=True)])


# --- dropout: statistics (torch's random numbers cannot be matched) and eval identity --------------------


def _dropout_stats(T, p):
    x = T.ones(200, 300, dtype=T.float64, requires_grad=True)
    drop = T.nn.Dropout(p)
    y = drop(x)
    y.sum().backward()
    a = numbers(y)
    kept = a[a != 0]
    return (a == 0).mean(), np.unique(kept), a.mean(), np.array_equal(numbers(x.grad), a)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics_match_torch(p):
    ours, theirs = _dropout_stats(sg, p), _dropout_stats(torch, p)
    assert abs(ours[0] - p) < 0.01 and abs(theirs[0] - p) < 0.01           # the fraction dropped
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-15)               # kept ones are 1/(1-p)
    assert abs(ours[2] - 1) < 0.03 and ours[3] and theirs[3]                 # mean kept; grad = mask/(1-p)


def test_dropout_eval_edges_and_errors():
    x = sg.tensor(np.arange(6.0).reshape(2, 3))
    drop = sg.nn.Dropout(0.5).eval()
    assert np.array_equal(drop(x).numpy(), x.numpy())
    assert np.array_equal(sg.nn.functional.dropout(x, 0.9, training=False).numpy(), x.numpy())
    assert np.array_equal(sg.nn.Dropout(0.0)(x).numpy(), x.numpy())
    zeros = torch.nn.Dropout(1.0)(torch.tensor(x.numpy())).numpy()
    assert np.array_equal(sg.nn.Dropout(1.0)(x).numpy(), zeros)
    sg.manual_seed(4)
    a = sg.nn.Dropout()(x).numpy()
    sg.manual_seed(4)
    assert np.array_equal(sg.nn.Dropout()(x).numpy(), a)                    # symgrad's generator
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            sg.nn.Dropout(bad)
        with pytest.raises(ValueError, match="between 0 and 1"):
            torch.nn.Dropout(bad)
    symbolic = sg.Variable(shape=(2, 3), name="x")
    with pytest.raises(NotImplementedError, match="eval"):
        sg.nn.Dropout()(symbolic)
    assert sg.nn.Dropout().eval()(symbolic) is symbolic


# --- a model on symbolic inputs compiles, with the eager numbers --------------------------------------------


def test_model_on_symbolic_inputs_compiles():
    m = sg.nn.Sequential(sg.nn.Linear(3, 4), sg.nn.GELU(), sg.nn.LayerNorm(4), sg.nn.Dropout(0.5),
                         sg.nn.Linear(4, 2)).double().eval()
    params = list(m.parameters())
    x = sg.Variable(shape=(5, 3), dtype="float64", name="x")
    y = sg.Variable(shape=(5,), dtype="int64", name="y")
    fn = sg.compile([x, y] + params, sg.nn.CrossEntropyLoss()(m(x), y))
    xv, yv = np.random.default_rng(0).normal(size=(5, 3)), np.array([0, 1, 1, 0, 1])
    loss, grads = fn.value_and_grad(xv, yv, *[p.detach().numpy() for p in params])
    eager = sg.nn.CrossEntropyLoss()(m(sg.tensor(xv)), sg.tensor(yv))
    eager.backward()
    assert loss == pytest.approx(eager.item(), rel=1e-12)
    for g, p in zip(grads, params):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-10, atol=1e-14)
    with pytest.raises((IndexError, ValueError, RuntimeError), match="labels"):
        fn.forward(xv, np.array([0, 1, 2, 0, 1]), *[p.detach().numpy() for p in params])  # 2 is not a class


# --- bad input: clear errors naming shapes and dtypes -------------------------------------------------------


def test_bad_input_errors():
    nn = sg.nn
    with pytest.raises(ValueError, match=r"\(2, 4\) and dtype symgrad.float32 does not end in in_features=3"):
        nn.Linear(3, 2)(sg.ones(2, 4))
    with pytest.raises(ValueError, match=r"normalized_shape=\[4\].*\[2, 3\]"):
        nn.LayerNorm(4)(sg.ones(2, 3))
    with pytest.raises(IndexError, match=r"\[0, 3\).*5"):
        nn.CrossEntropyLoss()(sg.ones(2, 3), sg.tensor([0, 5]))
    with pytest.raises(TypeError, match="integers"):
        nn.NLLLoss()(sg.ones(2, 3), sg.tensor([0.0, 1.0]))
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        nn.Embedding(4, 2)(sg.tensor([1, 4]))
    with pytest.raises(TypeError, match="float32"):
        nn.Embedding(4, 2)(sg.tensor([1.0]))
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        nn.L1Loss()(sg.ones(2, 3), sg.ones(3, 2))
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU(approximate="erf")
    with pytest.raises(TypeError, match="floating point"):
        nn.Linear(2, 2, dtype=sg.int64)


# --- PyTorch's parameter names and defaults, so that keyword calls carry over ----------------------------


def _params(fn):
    import inspect
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [(n, p.default) for n, p in sig.parameters.items() if n not in ("self", "args", "kwargs")]


@pytest.mark.parametrize("name", ["linear", "layer_norm", "dropout", "embedding", "softmax", "log_softmax",
                                  "mse_loss", "l1_loss", "nll_loss", "cross_entropy", "relu", "leaky_relu",
                                  "binary_cross_entropy_with_logits", "silu", "Linear", "LayerNorm",
                                  "Embedding", "Dropout", "Flatten", "ReLU", "LeakyReLU", "GELU", "Softmax",
                                  "LogSoftmax", "MSELoss", "L1Loss", "NLLLoss", "CrossEntropyLoss",
                                  "BCEWithLogitsLoss", "Sequential", "ModuleList", "ModuleDict"])
def test_parameter_names_and_defaults_follow_torch(name):
    where = (sg.nn, torch.nn) if name[0].isupper() else (sg.nn.functional, torch.nn.functional)
    ours, theirs = (_params(getattr(m, name)) for m in where)
    if theirs is None:
        pytest.skip("torch's has no Python signature")
    names = [n for n, _ in theirs]
    positions = [names.index(n) for n, _ in ours if n in names]
    assert positions == sorted(positions), (ours, theirs)            # the same order
    extra = [n for n, _ in ours if n not in names and not n.startswith("_")]
    assert not extra, extra
    defaults = dict(theirs)
    for n, d in ours:
        if n in defaults:
            assert d == defaults[n] or (d is None and defaults[n] is None), (name, n, d, defaults[n])
