"""Programs in the style of PyTorch's `examples_nn` tutorials (written here, not copied): each
runs in a subprocess once with `import torch` and once with `import symgrad as torch` put in
its place, and the numbers they print must agree (float32 programs to rtol 1e-4, float64 to
1e-6). Some set their initial weights themselves; the seeded ones start from the default
initialisation or torch.randn after torch.manual_seed, which symgrad's generator reproduces."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]

POLYNOMIAL_SEQUENTIAL = '''
import math
import torch

x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)
p = torch.tensor([1, 2, 3])
xx = x.unsqueeze(-1).pow(p)

model = torch.nn.Sequential(
    torch.nn.Linear(3, 1),
    torch.nn.Flatten(0, 1)
)
with torch.no_grad():
    model[0].weight.copy_(torch.tensor([[0.3, -0.1, 0.05]]))
    model[0].bias.fill_(0.2)
loss_fn = torch.nn.MSELoss(reduction='sum')

learning_rate = 1e-6
for t in range(200):
    y_pred = model(xx)
    loss = loss_fn(y_pred, y)
    if t % 40 == 39:
        print(t, loss.item())
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for param in model.parameters():
            param -= learning_rate * param.grad

linear_layer = model[0]
print(f'Result: y = {linear_layer.bias.item()} + {linear_layer.weight[:, 0].item()} x + '
      f'{linear_layer.weight[:, 1].item()} x^2 + {linear_layer.weight[:, 2].item()} x^3')
print([name for name, _ in model.named_parameters()], list(model.state_dict()))
'''

POLYNOMIAL_MODULE = '''
import math
import torch


class Polynomial3(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(0.1, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.tensor(-0.2, dtype=torch.float64))
        self.c = torch.nn.Parameter(torch.tensor(0.05, dtype=torch.float64))
        self.d = torch.nn.Parameter(torch.tensor(0.01, dtype=torch.float64))

    def forward(self, x):
        return self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3

    def string(self):
        return f'y = {self.a.item()} + {self.b.item()} x + {self.c.item()} x^2 + {self.d.item()} x^3'


x = torch.linspace(-math.pi, math.pi, 2000, dtype=torch.float64)
y = torch.sin(x)
model = Polynomial3()
criterion = torch.nn.MSELoss(reduction='sum')
learning_rate = 1e-6
for t in range(250):
    y_pred = model(x)
    loss = criterion(y_pred, y)
    if t % 50 == 49:
        print(t, loss.item())
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= learning_rate * p.grad
print(f'Result: {model.string()}')
print(len(list(model.parameters())), [n for n, _ in model.named_parameters()])
'''

DYNAMIC_NET = '''
import math
import random
import torch


class DynamicNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(0.2, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.tensor(0.1, dtype=torch.float64))
        self.c = torch.nn.Parameter(torch.tensor(-0.1, dtype=torch.float64))
        self.d = torch.nn.Parameter(torch.tensor(0.05, dtype=torch.float64))
        self.e = torch.nn.Parameter(torch.tensor(0.0, dtype=torch.float64))

    def forward(self, x):
        y = self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3
        for exp in range(4, random.randint(4, 6)):    # the same choices in both runs: random is seeded
            y = y + self.e * x ** exp
        return y


random.seed(0)
x = torch.linspace(-math.pi, math.pi, 1000, dtype=torch.float64)
y = torch.sin(x)
model = DynamicNet()
criterion = torch.nn.MSELoss(reduction='sum')
for t in range(150):
    loss = criterion(model(x), y)
    if t % 30 == 29:
        print(t, loss.item())
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:          # e gets none when no higher power was drawn
                p -= 1e-8 * p.grad
print([round(p.item(), 12) for p in model.parameters()])
'''

CLASSIFIER = '''
import numpy as np
import torch

rng = np.random.default_rng(0)
centres = rng.normal(size=(3, 4)) * 2
labels = rng.integers(0, 3, 120)
data = (centres[labels] + rng.normal(size=(120, 4))).astype(np.float32)
X, Y = torch.from_numpy(data), torch.from_numpy(labels)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16),
                                          torch.nn.Tanh())
        self.norm = torch.nn.LayerNorm(16)
        self.out = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.out(self.norm(self.hidden(x)))


model = Net()
model.load_state_dict({k: torch.from_numpy(rng.uniform(-0.5, 0.5, v.shape).astype(np.float32))
                       for k, v in model.state_dict().items()})
loss_fn = torch.nn.CrossEntropyLoss()
for step in range(60):
    logits = model(X)
    loss = loss_fn(logits, Y)
    if step % 10 == 0:
        print(step, loss.item())
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
model.eval()
with torch.no_grad():
    accuracy = (model(X).argmax(1) == Y).float().mean().item()
print('accuracy', accuracy)
copy = Net()
copy.load_state_dict(model.state_dict())
print('copy', torch.nn.functional.cross_entropy(copy(X), Y).item(), list(model.state_dict())[:4])
'''

POLYNOMIAL_OPTIM = '''
import math
import torch

torch.manual_seed(0)
x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)
p = torch.tensor([1, 2, 3])
xx = x.unsqueeze(-1).pow(p)
model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
print(model[0].weight, model[0].bias)
loss_fn = torch.nn.MSELoss(reduction='sum')
optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
for t in range(300):
    y_pred = model(xx)
    loss = loss_fn(y_pred, y)
    if t % 60 == 59:
        print(t, loss.item())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
linear_layer = model[0]
print(f'Result: y = {linear_layer.bias.item()} + {linear_layer.weight[:, 0].item()} x + '
      f'{linear_layer.weight[:, 1].item()} x^2 + {linear_layer.weight[:, 2].item()} x^3')
'''

SEEDED_MODULE = '''
import math
import torch


class Polynomial3(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.randn(()))
        self.b = torch.nn.Parameter(torch.randn(()))
        self.c = torch.nn.Parameter(torch.randn(()))
        self.d = torch.nn.Parameter(torch.randn(()))

    def forward(self, x):
        return self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3

    def string(self):
        return f'y = {self.a.item()} + {self.b.item()} x + {self.c.item()} x^2 + {self.d.item()} x^3'


torch.manual_seed(1)
x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)
model = Polynomial3()
print(model.string())
criterion = torch.nn.MSELoss(reduction='sum')
optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.5)
for t in range(200):
    loss = criterion(model(x), y)
    if t % 50 == 49:
        print(t, loss.item())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(f'Result: {model.string()}')
'''

PROGRAMS = {"polynomial_sequential": (POLYNOMIAL_SEQUENTIAL, 1e-4),
            "polynomial_optim": (POLYNOMIAL_OPTIM, 1e-4), "seeded_module": (SEEDED_MODULE, 1e-4),
            "polynomial_module": (POLYNOMIAL_MODULE, 1e-6),
            "dynamic_net": (DYNAMIC_NET, 1e-6), "classifier": (CLASSIFIER, 1e-4)}
NUMBER = re.compile(r"-?\d+\.?\d*(?:e[-+]?\d+)?")

# One subprocess per library runs every program (each in a fresh namespace, its output
# captured): importing torch costs seconds, once is enough.
RUNNER = """
import contextlib, io, json, sys
sources = json.loads(sys.stdin.read())
outputs = {}
for name, source in sources.items():
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            exec(compile(source, name, "exec"), {"__name__": "__main__"})
    except Exception as error:
        buffer.write(f"FAILED: {type(error).__name__}: {error}")
    outputs[name] = buffer.getvalue()
print(json.dumps(outputs))
"""


def _run_all(swap: bool) -> dict:
    sources = {}
    for name, (source, _) in PROGRAMS.items():
        assert "import torch\n" in source
        sources[name] = source.replace("import torch\n", "import symgrad as torch\n") if swap else source
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(sources), cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def printed():
    return {"torch": _run_all(swap=False), "symgrad": _run_all(swap=True)}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_prints_torch_numbers(name, printed):
    rtol = PROGRAMS[name][1]
    theirs, ours = printed["torch"][name], printed["symgrad"][name]
    assert "FAILED" not in theirs and "FAILED" not in ours, (ours, theirs)
    assert NUMBER.sub("#", ours) == NUMBER.sub("#", theirs), (ours, theirs)      # the same text around
    a, b = [float(v) for v in NUMBER.findall(ours)], [float(v) for v in NUMBER.findall(theirs)]
    assert len(a) == len(b) > 5
    for u, v in zip(a, b):
        assert u == pytest.approx(v, rel=rtol, abs=1e-9), (ours, theirs)
