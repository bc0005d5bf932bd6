"""In the style of the Variable-era tutorials and a small autograd library's examples: a
neuron with tanh, updates through .data, gradients zeroed through .grad.data, retain_grad,
second derivatives and the functional API."""
import torch
from torch.autograd import Variable

x1 = torch.Tensor([2.0]).double()
x1.requires_grad = True
x2 = torch.Tensor([0.0]).double()
x2.requires_grad = True
w1 = torch.Tensor([-3.0]).double()
w1.requires_grad = True
w2 = torch.Tensor([1.0]).double()
w2.requires_grad = True
b = torch.Tensor([6.8813735870195432]).double()
b.requires_grad = True
n = x1 * w1 + x2 * w2 + b
o = torch.tanh(n)
print(o.data.item())
o.backward()
print('---')
print('x2', x2.grad.item())
print('w2', w2.grad.item())
print('x1', x1.grad.item())
print('w1', w1.grad.item())

xs = torch.tensor([[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]])
ys = torch.tensor([1.0, -1.0, -1.0, 1.0])
W = Variable(torch.linspace(-0.5, 0.5, 3).reshape(3, 1), requires_grad=True)
c = Variable(torch.zeros(1), requires_grad=True)
for k in range(20):
    pred = torch.tanh(xs @ W + c).reshape(-1)
    loss = ((pred - ys) ** 2).sum()
    if W.grad is not None:
        W.grad.data.zero_()
        c.grad.data.zero_()
    loss.backward()
    W.data -= 0.05 * W.grad.data
    c.data -= 0.05 * c.grad.data
    if k % 5 == 4:
        print(k, f"{loss.item():.4f}")
print(W.data.reshape(-1), c.data)
print(W.requires_grad, W.data.requires_grad, W.grad.requires_grad, W.is_leaf)

x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = x ** 2
y.retain_grad()
z = (y * 3).sum()
z.backward(retain_graph=True)
print(y.grad, x.grad)
z.backward()
print(x.grad, y.grad)
print(y.is_leaf, y.retains_grad, x.retains_grad)

x = torch.tensor(1.5, requires_grad=True)
y = x ** 3 - 2 * x
dy, = torch.autograd.grad(y, x, create_graph=True)
d2y, = torch.autograd.grad(dy, x)
print(dy.item(), d2y.item())


def f(v):
    return (v ** 2).sum()


def g(v):
    return torch.sin(v) * v


v = torch.tensor([0.5, -1.0, 2.0])
print(torch.autograd.functional.jacobian(g, v))
print(torch.autograd.functional.hessian(lambda t: (t ** 3).sum(), v))
print(torch.autograd.functional.vjp(g, v, torch.ones(3)))
print(torch.autograd.functional.jvp(g, v, torch.ones(3)))
print(torch.autograd.functional.hvp(lambda t: (t ** 3).sum(), v, torch.ones(3)))
