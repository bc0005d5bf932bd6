"""In the style of a small scalar autograd library's test suite, with torch as the oracle:
scalar expressions in float64, their values and the leaves' gradients."""
import torch


def sanity_check():
    x = torch.Tensor([-4.0]).double()
    x.requires_grad = True
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    print(y.data.item(), x.grad.item())
    return y, x


def more_ops():
    a = torch.Tensor([-4.0]).double()
    b = torch.Tensor([2.0]).double()
    a.requires_grad = True
    b.requires_grad = True
    c = a + b
    d = a * b + b ** 3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e ** 2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    print(g.data.item(), a.grad.item(), b.grad.item())
    tol = 1e-6
    print(abs(g.data.item() - 24.70408163265306) < tol)
    return g


def extra_ops():
    a = torch.Tensor([1.5]).double()
    a.requires_grad = True
    b = torch.Tensor([-0.75]).double()
    b.requires_grad = True
    c = (a * b).tanh() + a.exp() / (1 + b * b) - (a - b).sigmoid()
    c = c * c.abs() + 2 ** a - a ** 0.5 + (b ** 2).log()
    c.backward()
    print(round(c.data.item(), 10), round(a.grad.item(), 10), round(b.grad.item(), 10))


y, x = sanity_check()
print(y.shape, y.dtype == torch.float64, x.grad.dtype == torch.double, y.grad_fn is not None)
g = more_ops()
print(type(g.grad_fn).__name__)
extra_ops()
