"""In the style of a textbook's automatic-differentiation chapter: gradients of y = 2 x.x,
resetting them, non-scalar backward, detaching, and Python control flow."""
import torch

x = torch.arange(4.0)
print(x)
x.requires_grad_(True)
print(x.grad)
y = 2 * torch.dot(x, x)
print(y)
y.backward()
print(x.grad)
print(x.grad == 4 * x)

x.grad.zero_()
y = x.sum()
y.backward()
print(x.grad)

x.grad.zero_()
y = x * x
y.backward(gradient=torch.ones(len(y)))
print(x.grad)

x.grad.zero_()
y = x * x
y.sum().backward()
print(x.grad)

x.grad.zero_()
y = x * x
u = y.detach()
z = u * x
z.sum().backward()
print(x.grad == u)
print(u, u.requires_grad)

x.grad.zero_()
y.sum().backward()
print(x.grad == 2 * x)


def f(a):
    b = a * 2
    while b.norm() < 1000:
        b = b * 2
    if b.sum() > 0:
        c = b
    else:
        c = 100 * b
    return c


for start in [0.7, -1.3, 12.0]:
    a = torch.tensor(start, requires_grad=True)
    d = f(a)
    d.backward()
    print(a.grad, a.grad == d / a, d)

a = torch.tensor([0.25, -0.5, 2.0], requires_grad=True)
d = f(a)
d.sum().backward()
print(a.grad, d)
