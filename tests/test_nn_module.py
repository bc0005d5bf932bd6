"""nn.Module's bookkeeping against PyTorch's: names and order of parameters, buffers and
submodules, state_dict keys and round trips, load_state_dict's errors, modes, zero_grad,
dtype conversion, apply, hooks, containers and printing. Each case is written once against a
module `T` and run with torch and with symgrad."""
from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")
BOTH = pytest.mark.parametrize("T", [sg, torch], ids=["symgrad", "torch"])


def make_net(T):
    nn = T.nn

    class Block(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.fc = nn.Linear(n, n)
            self.norm = nn.LayerNorm(n)
            self.register_buffer("count", T.zeros(1))
            self.register_buffer("scratch", T.ones(2), persistent=False)

        def forward(self, x):
            return self.norm(T.relu(self.fc(x)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(5, 3)
            self.blocks = nn.ModuleList([Block(3), Block(3)])
            self.shared = self.blocks[0]            # the same module under a second name
            self.heads = nn.ModuleDict(OrderedDict([("b", nn.Linear(3, 1)),
                                                    ("a", nn.Linear(3, 2, bias=False))]))
            self.seq = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Dropout(0.1))
            self.temperature = nn.Parameter(T.ones(()))
            self.plain = 3

        def forward(self, idx):
            h = self.embed(idx)
            for block in self.blocks:
                h = block(h)
            return self.heads["a"](self.seq(h)) * self.temperature

    return Net()


def walk(T):
    net = make_net(T)
    return {
        "named_parameters": [(n, tuple(p.shape)) for n, p in net.named_parameters()],
        "parameters": [tuple(p.shape) for p in net.parameters()],
        "not_recursive": [n for n, _ in net.named_parameters(recurse=False)],
        "with_duplicates": [n for n, _ in net.named_parameters(remove_duplicate=False)],
        "prefixed": [n for n, _ in net.blocks.named_parameters(prefix="blocks")],
        "named_buffers": [n for n, _ in net.named_buffers()],
        "buffers": len(list(net.buffers())),
        "named_children": [n for n, _ in net.named_children()],
        "children": [type(m).__name__ for m in net.children()],
        "named_modules": [(n, type(m).__name__) for n, m in net.named_modules()],
        "modules": len(list(net.modules())),
        "state_dict": list(net.state_dict()),
        "state_dict_shapes": [tuple(v.shape) for v in net.state_dict().values()],
        "keep_vars": [type(v).__name__ == "Parameter" for v in net.state_dict(keep_vars=True).values()],
        "submodule": type(net.get_submodule("blocks.1.norm")).__name__,
        "get_parameter": tuple(net.get_parameter("heads.a.weight").shape),
        "requires_grad": [p.requires_grad and p.is_leaf for p in net.parameters()],
        "repr": repr(net),
        "len": (len(net.blocks), len(net.heads), len(net.seq)),
        "dict_keys": list(net.heads.keys()),
        "in": ("a" in net.heads, "c" in net.heads),
        "slice": repr(net.seq[1:]),
        "negative": type(net.seq[-1]).__name__,
        "plain": net.plain,
    }


def test_walking_names_and_printing_match_torch():
    ours, theirs = walk(sg), walk(torch)
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert ours[key] == theirs[key], key


def test_repr_of_layers_matches_torch():
    def reprs(T):
        nn = T.nn
        layers = [nn.Linear(3, 2), nn.Linear(3, 2, bias=False), nn.Identity(), nn.Flatten(), nn.Flatten(0, 1),
                  nn.ReLU(), nn.Tanh(), nn.Sigmoid(), nn.GELU(), nn.GELU(approximate="tanh"),
                  nn.Softmax(dim=1), nn.LogSoftmax(dim=-1), nn.LayerNorm(4),
                  nn.LayerNorm((2, 3), eps=1e-3, elementwise_affine=False),
                  nn.Embedding(10, 3), nn.Embedding(10, 3, padding_idx=0), nn.Dropout(), nn.Dropout(0.2),
                  nn.MSELoss(), nn.L1Loss(), nn.CrossEntropyLoss(), nn.NLLLoss(), nn.BCEWithLogitsLoss(),
                  nn.LeakyReLU(0.2), nn.SiLU(), nn.ModuleList(), nn.ModuleDict(), nn.Sequential(),
                  nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU()]),
                  nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1)),
                  nn.Sequential(OrderedDict([("hidden", nn.Sequential(nn.Linear(2, 4), nn.ReLU())),
                                             ("out", nn.Linear(4, 1))]))]
        return [repr(m) for m in layers]
    assert reprs(sg) == reprs(torch)


def test_parameter_prints_and_behaves_as_torch():
    p = sg.nn.Parameter(sg.tensor([1.0, 2.0]))
    q = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    assert repr(p) == repr(q)
    assert isinstance(p, sg.Tensor) and p.is_leaf and p.requires_grad and p.grad_fn is None
    frozen = sg.nn.Parameter(sg.ones(2), requires_grad=False)
    assert not frozen.requires_grad
    theirs = repr(torch.nn.Parameter(torch.tensor(np.ones(2))))
    assert repr(sg.nn.Parameter(sg.tensor(np.ones(2)))) == theirs.replace("torch.", "symgrad.")
    y = (p * 3).sum()
    assert type(y) is sg.Variable and y.grad_fn is not None      # not a Parameter
    y.backward()
    assert p.grad.tolist() == [3.0, 3.0]
    with pytest.raises(RuntimeError):
        sg.nn.Parameter(sg.tensor([1, 2]))         # integers cannot require grad, as in torch
    with pytest.raises(RuntimeError):
        torch.nn.Parameter(torch.tensor([1, 2]))


@BOTH
def test_modes_zero_grad_apply_and_requires_grad(T):
    net = make_net(T)
    assert net.training and all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    net.seq.train(False)
    assert [m.training for m in net.modules()] == [True] * 12 + [False] * 4
    with pytest.raises(ValueError, match="boolean"):
        net.train("yes")
    net.train()
    loss = net(T.tensor([[0, 1], [4, 2]])).sum()
    loss.backward()
    grads = [p.grad is not None for p in net.parameters()]
    assert sum(grads) == len(grads) - 2          # blocks.1.fc and norm reached; heads.b and seq? no
    held = [p.grad for p in net.parameters()]
    net.zero_grad(set_to_none=False)
    assert all(p.grad is None or float(abs(p.grad).sum()) == 0.0 for p in net.parameters())
    assert all(p.grad is g for p, g in zip(net.parameters(), held))      # zeroed in place
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen[-1] == "Net" and seen[0] == "Embedding"
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_modes_and_apply_order_match_torch():
    def run(T):
        net = make_net(T)
        net.seq.eval()
        order = []
        net.apply(lambda m: order.append(type(m).__name__))
        loss = net(T.tensor([[0, 1], [4, 2]])).sum()
        loss.backward()
        return ([m.training for m in net.modules()], order,
                [n for n, p in net.named_parameters() if p.grad is not None])
    assert run(sg) == run(torch)


@BOTH
def test_state_dict_round_trip(T):
    a, b = make_net(T), make_net(T)
    state = a.state_dict()
    result = b.load_state_dict(state)
    assert repr(result) == "<All keys matched successfully>"
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (k, v), (k2, w) in zip(a.state_dict().items(), b.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(v.numpy(), w.numpy())
    # The values share storage with the model's, as torch's do.
    with T.no_grad():
        state["heads.b.bias"].fill_(7.0)
    assert a.heads.b.bias.tolist() == [7.0]
    # Loading copies: the parameters stay the same objects.
    p = b.heads.b.bias
    b.load_state_dict(a.state_dict())
    assert b.heads.b.bias is p and p.tolist() == [7.0] and p.requires_grad


def test_load_state_dict_takes_numpy_arrays_and_casts():
    net = make_net(sg)
    state = {k: np.full(v.shape, 0.5, dtype=np.float64) for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    assert all(v.dtype == np.float32 and np.all(v.numpy() == 0.5) for v in net.state_dict().values())
    net.load_state_dict(make_net(torch).state_dict())          # torch tensors, through __array__
    assert net.temperature.dtype == np.float32
    theirs = make_net(torch)
    net.load_state_dict(theirs.state_dict(keep_vars=True))     # torch parameters that require grad
    for (key, ours), value in zip(net.state_dict().items(), theirs.state_dict().values()):
        np.testing.assert_array_equal(ours.numpy(), value.numpy(), err_msg=key)


def _load_errors(T):
    nn = T.nn
    m = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    good = {k: v.clone() for k, v in m.state_dict().items()}
    messages = []
    for bad in ({k: v for k, v in good.items() if k != "2.bias"},
                dict(good, extra=T.zeros(1)),
                dict(good, **{"0.weight": T.zeros(3, 3)}),
                dict({k: v for k, v in good.items() if k != "0.bias"},
                     **{"2.weight": T.zeros(2), "x.y": T.ones(1)})):
        with pytest.raises(RuntimeError) as info:
            m.load_state_dict(bad)
        messages.append(str(info.value))
    loose = m.load_state_dict(dict(good, extra=T.zeros(1)), strict=False)
    missing = m.load_state_dict({k: v for k, v in good.items() if k != "2.bias"}, strict=False)
    return (messages, (loose.missing_keys, loose.unexpected_keys),
            (missing.missing_keys, missing.unexpected_keys))


def test_load_state_dict_errors_match_torch():
    assert _load_errors(sg) == _load_errors(torch)
    with pytest.raises(TypeError, match='"weight"'):
        sg.nn.Linear(3, 2).load_state_dict({"weight": "nope", "bias": np.zeros(2)})


def test_to_dtype_keeps_the_parameter_objects():
    for T in (sg, torch):
        net = make_net(T)
        params = list(net.parameters())
        loss = net(T.tensor([[0, 1]])).sum()
        loss.backward()
        assert net.double() is net
        assert [p is q for p, q in zip(net.parameters(), params)] == [True] * len(params)
        assert all(p.dtype == T.float64 for p in net.parameters())
        assert all(p.grad is None or p.grad.dtype == T.float64 for p in net.parameters())
        assert all(b.dtype == T.float64 for b in net.buffers())
        net.to(T.float32)
        assert all(p.dtype == T.float32 for p in net.parameters())
        net.to("cpu")
        net.to(T.zeros(1, dtype=T.float64))
        assert net.temperature.dtype == T.float64
        net.float()
        with pytest.raises(TypeError, match="floating point"):
            net.to(T.int64)


@BOTH
def test_registration_rules(T):
    nn = T.nn
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign"):
        m.weight = T.zeros(2, 2)                  # a plain tensor where a parameter is
    m.weight = nn.Parameter(T.zeros(2, 2))
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    m.bias = None
    assert [n for n, _ in m.named_parameters()] == ["weight"] and m.bias is None
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("weight", T.zeros(1))
    with pytest.raises(KeyError, match="contain"):
        m.register_buffer("a.b", T.zeros(1))
    with pytest.raises(KeyError, match="empty string"):
        m.register_parameter("", None)
    with pytest.raises(TypeError, match="cannot assign"):
        m.register_buffer("buf", [1, 2])
    with pytest.raises(TypeError, match="is not a Module subclass"):
        m.add_module("child", 3)
    m.register_buffer("running", T.ones(2))
    m.running = T.zeros(2)                         # a tensor assigned to a buffer stays a buffer
    assert [n for n, _ in m.named_buffers()] == ["running"] and m.running.tolist() == [0.0, 0.0]
    m.add_module("child", nn.ReLU())
    assert [n for n, _ in m.named_children()] == ["child"]
    del m.child
    assert list(m.named_children()) == []
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        m.nothing
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(T.zeros(1))

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(T.zeros(1))
    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call"):
        Early()


@BOTH
def test_containers(T):
    nn = T.nn
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    seq.append(nn.Linear(3, 1))
    assert len(seq) == 3 and [n for n, _ in seq.named_children()] == ["0", "1", "2"]
    del seq[1]
    assert [n for n, _ in seq.named_children()] == ["0", "1"]
    seq.insert(1, nn.Tanh())
    assert [type(m).__name__ for m in seq] == ["Linear", "Tanh", "Linear"]
    seq[1] = nn.Sigmoid()
    assert type(seq[1]).__name__ == "Sigmoid"
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    assert seq(T.ones(4, 2)).shape == (4, 1)
    ml = nn.ModuleList([nn.ReLU()])
    ml += [nn.Tanh(), nn.Sigmoid()]
    ml.insert(0, nn.Identity())
    assert [type(m).__name__ for m in ml] == ["Identity", "ReLU", "Tanh", "Sigmoid"]
    assert [type(m).__name__ for m in ml[1:3]] == ["ReLU", "Tanh"] and type(ml[1:3]).__name__ == "ModuleList"
    with pytest.raises(TypeError, match="iterable"):
        ml.extend(3)
    md = nn.ModuleDict({"x": nn.ReLU()})
    md.update([("y", nn.Tanh())])
    md["z"] = nn.Identity()
    assert list(md) == ["x", "y", "z"] and type(md.pop("y")).__name__ == "Tanh"
    assert list(md.keys()) == ["x", "z"]
    assert [type(v).__name__ for v in md.values()] == ["ReLU", "Identity"]


@BOTH
def test_forward_hooks(T):
    m = T.nn.Linear(2, 2)
    calls = []
    h = m.register_forward_hook(lambda mod, args, out: calls.append(tuple(out.shape)) or out * 0)
    pre = m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
    assert float(abs(m(T.ones(3, 2))).sum().detach()) == 0.0 and calls == [(3, 2)]
    h.remove()
    pre.remove()
    assert float(abs(m(T.ones(3, 2))).sum().detach()) > 0.0 and calls == [(3, 2)]


def test_deepcopy_gives_independent_parameters():
    net = sg.nn.Sequential(sg.nn.Linear(2, 2))
    twin = copy.deepcopy(net)
    with sg.no_grad():
        twin[0].weight.fill_(1.0)
    assert net[0].weight.detach().numpy().tolist() != twin[0].weight.detach().numpy().tolist()
    assert isinstance(twin[0].weight, sg.nn.Parameter) and twin[0].weight.requires_grad


def _pickle_round_trip(T):
    import pickle
    nn = T.nn
    net = nn.Sequential(nn.Embedding(5, 3), nn.LayerNorm(3), nn.Dropout(0.2), nn.Linear(3, 2),
                        nn.Linear(2, 2))
    net.add_module("loss", nn.BCEWithLogitsLoss(pos_weight=T.ones(2)))
    net.register_buffer("steps", T.zeros(1))
    net.eval()
    idx = T.tensor([[0, 1], [4, 2]])
    for layer in list(net)[:-1]:
        idx = layer(idx)
    idx.sum().backward()
    twin = pickle.loads(pickle.dumps(net))
    idx = T.tensor([[0, 1], [4, 2]])
    first, second = idx, idx
    for a, b in zip(list(net)[:-1], list(twin)[:-1]):
        first, second = a(first), b(second)
    same = [np.array_equal(a.numpy(), b.numpy()) for a, b in zip(net.state_dict().values(),
                                                                 twin.state_dict().values())]
    grads = [p.grad is not None for p in twin.parameters()]
    return (same, grads, [n for n, _ in twin.named_buffers()], repr(twin) == repr(net),
            np.array_equal(first.detach().numpy(), second.detach().numpy()), twin.training,
            all(p.requires_grad for p in twin.parameters()))


def test_pickle_round_trip_matches_torch():
    assert _pickle_round_trip(sg) == _pickle_round_trip(torch)


@BOTH
def test_load_state_dict_assign(T):
    m = T.nn.Linear(2, 1)
    old = m.weight
    m.load_state_dict({"weight": T.ones(1, 2), "bias": T.zeros(1)}, assign=True)
    assert m.weight is not old and m.weight.tolist() == [[1.0, 1.0]]
    assert type(m.weight).__name__ == "Parameter" and m.weight.requires_grad
