"""Tensor methods and functions that tutorial programs use in passing: new tensors from a
tensor, keyword names, errors PyTorch raises, hooks and gradient options."""
import numpy as np
import torch

x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
print(x.new_ones(2, 3), x.new_zeros((1, 2)), x.new_full((2,), 3.5), x.new_tensor([1, 2]))
print(x.new_tensor([1.5, 2.5]).dtype == torch.float32)
print(torch.add(input=x, other=x, alpha=2))
print(x.add(other=1), x.mul(other=x))
y = x.clone()
y.add_(other=torch.ones(2, 2), alpha=3)
print(y)
y.mul_(other=2)
print(y)
y.sub_(other=1)
y.div_(other=4)
print(y)
print(torch.sum(x, dim=0), torch.sum(input=x, dim=1, keepdim=True), torch.mean(x, dim=(0, 1)))
print(torch.matmul(input=x, other=x), torch.exp(input=x))
print(torch.norm(x), x.norm(), torch.norm(x, dim=1))
print(torch.randn(size=(2, 3)).shape, torch.zeros(size=(2,)), torch.ones(size=(1, 2)))
print(x.pow(2), x.pow(exponent=3))
print(torch.cat((x, x), dim=0).shape, torch.cat(tensors=[x, x], dim=1).shape)

w = torch.tensor([1.0, 2.0], requires_grad=True)
print(w.detach().numpy())
try:
    (w * w).backward()
except RuntimeError as err:
    print("RuntimeError:", str(err)[:54])
try:
    w.add_(1)
except RuntimeError as err:
    print("RuntimeError:", str(err)[:34])
with torch.no_grad():
    w.add_(1)
print(w)

seen = []
w = torch.tensor([1.0, 2.0], requires_grad=True)
h = w.register_hook(lambda g: seen.append(g.clone()))
(w * 3).sum().backward()
print(seen, w.grad)
h.remove()
(w * 3).sum().backward()
print(len(seen), w.grad)
w.grad = None
h = w.register_hook(lambda g: g * 10)
(w * w).sum().backward()
print(w.grad)

a = torch.tensor([1.0, 2.0], requires_grad=True)
b = torch.tensor([3.0, 4.0], requires_grad=True)
out = (a * 2).sum()
ga, gb = torch.autograd.grad(out, (a, b), allow_unused=True, retain_graph=True)
print(ga, gb)
ga, gb = torch.autograd.grad(out, (a, b), allow_unused=True, materialize_grads=True)
print(ga, gb)
g, = torch.autograd.grad((a ** 3).sum(), a, create_graph=True)
print(g.detach(), g.requires_grad, g.grad_fn is not None)
g.sum().backward()
print(a.grad)

m = torch.tensor([[1.0, -1.0], [2.0, 0.5]], requires_grad=True)
z = m.sum()
print(z.grad_fn.next_functions[0][0], z.grad_fn.next_functions[0][0].variable is m)
n = np.array([1.0, 2.0], dtype=np.float32)
print(torch.tensor([1.0, 1.0]) + n, torch.tensor([1.0, 1.0]) * n)
print(torch.allclose(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7])))
print(torch.is_grad_enabled(), torch.get_default_dtype() == torch.float32)
print(torch.cuda.is_available() in (True, False), torch.device("cpu").type)
print(x.numel(), x.dim(), x.element_size() if hasattr(x, "element_size") else 4, len(x))
print(x.is_floating_point(), x.type(), x.long().type())
print(int(torch.tensor(3)), float(torch.tensor(2.5)), bool(torch.tensor([1])))
print([v.item() for v in torch.tensor([1.0, 2.0])])
