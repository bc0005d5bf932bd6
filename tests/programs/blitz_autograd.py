"""In the style of the blitz's autograd page: gradients with an external gradient,
what requires grad, and freezing."""
import torch

a = torch.tensor([2., 3.], requires_grad=True)
b = torch.tensor([6., 4.], requires_grad=True)
Q = 3 * a ** 3 - b ** 2
print(Q)
external_grad = torch.tensor([1., 1.])
Q.backward(gradient=external_grad)
print(9 * a ** 2 == a.grad)
print(-2 * b == b.grad)
print(a.grad, b.grad)

x = torch.linspace(-1, 1, 25).reshape(5, 5)
y = torch.linspace(0, 2, 25).reshape(5, 5)
z = torch.linspace(1, 3, 25).reshape(5, 5).requires_grad_()
aa = x + y
print(f"Does `a` require gradients?: {aa.requires_grad}")
bb = x + z
print(f"Does `b` require gradients?: {bb.requires_grad}")
print(bb.is_leaf, z.is_leaf, x.is_leaf, bb.grad_fn)

with torch.no_grad():
    cc = z * 2
print(cc.requires_grad, cc.grad_fn)

w = torch.linspace(-2, 2, 6).reshape(2, 3).requires_grad_(True)
out = (w.exp() * 2).sum()
out.backward()
print(w.grad)
w.grad.zero_()
print(w.grad)

x = torch.linspace(-1, 1, 3, requires_grad=True)
print(x.requires_grad)
print((x ** 2).requires_grad)
with torch.no_grad():
    print((x ** 2).requires_grad)
y = x.detach()
print(y.requires_grad)
print(x.eq(y).all(), torch.any(x > 0.5), (x > 2).any())
m, s = torch.std_mean(x)
print(m, s)
