"""In the style of the introyt tutorial's deeper look at tensors: creation, dtypes,
broadcasting, math, in-place operations, copies, shapes and the numpy bridge."""
import math
import numpy as np
import torch

x = torch.empty(3, 4)
print(torch.is_tensor(x))
print(x.shape)
zeros = torch.zeros(2, 3)
print(zeros)
ones = torch.ones(2, 3)
print(ones)
torch.manual_seed(1729)
random = torch.rand(2, 3)
print(random.shape)
print('A random tensor:')
print(random)
random2 = torch.rand(2, 3)
print('A different random tensor:')
print(random2)
torch.manual_seed(1729)
random3 = torch.rand(2, 3)
print('Should match the first:')
print(random3)
print(torch.randn(2, 4))
print(torch.randint(0, 10, (3, 3)))

some_constants = torch.tensor([[3.1415926, 2.71828], [1.61803, 0.0072897]])
print(some_constants)
some_integers = torch.tensor((2, 3, 5, 7, 11, 13, 17, 19))
print(some_integers)
more_integers = torch.tensor(((2, 4, 6), [3, 6, 9]))
print(more_integers)

a = torch.ones((2, 3), dtype=torch.float64)
print(a)
b = torch.arange(6, dtype=torch.float64).reshape(2, 3) * 20.
print(b)
c = b.to(torch.int32)
print(c)

ones = torch.zeros(2, 2) + 1
twos = torch.ones(2, 2) * 2
threes = (torch.ones(2, 2) * 7 - 1) / 2
fours = twos ** 2
sqrt2s = twos ** 0.5
print(ones)
print(twos)
print(threes)
print(fours)
print(sqrt2s)
powers2 = twos ** torch.tensor([[1, 2], [3, 4]])
print(powers2)
fives = ones + fours
print(fives)
dozens = threes * fours
print(dozens)

rand = torch.linspace(0, 1, 8).reshape(2, 4)
doubled = rand * (torch.ones(1, 4) * 2)
print(rand)
print(doubled)
a = torch.ones(4, 3, 2)
b = a * torch.tensor([[0.5, 1.5], [2.5, 3.5], [4.5, 5.5]])
print(b)
c = a * torch.tensor([[1.0], [2.0], [3.0]])
print(c)
d = a * torch.tensor([[0.25, 0.75]])
print(d)

a = torch.tensor([[-0.8, 0.3], [1.6, -2.4]]) * 2 - 1
print('Common functions:')
print(torch.abs(a))
print(torch.ceil(a))
print(torch.floor(a))
print(torch.clamp(a, -0.5, 0.5))

angles = torch.tensor([0, math.pi / 4, math.pi / 2, 3 * math.pi / 4])
sines = torch.sin(angles)
print('\nSine and arcsine:')
print(angles)
print(sines)

print('\nBroadcasted, element-wise equality comparison:')
d = torch.tensor([[1., 2.], [3., 4.]])
e = torch.ones(1, 2)
print(torch.eq(d, e))

print('\nReduction ops:')
print(torch.max(d))
print(torch.max(d).item())
print(torch.mean(d))
print(torch.std(d))
print(torch.unique(torch.tensor([1, 2, 1, 2, 1, 2])))

m1 = torch.tensor([[2., 0.], [0., 2.]])
m2 = torch.tensor([[0.5, 1.0], [1.5, 2.0]])
print(m2)
print(torch.matmul(m1, m2))

a = torch.tensor([0, math.pi / 4, math.pi / 2, 3 * math.pi / 4])
print('a:')
print(a)
print(torch.sin(a))
print(a)
a = torch.tensor([0, math.pi / 4, math.pi / 2, 3 * math.pi / 4])
print('\nb:')
print(a)
print(torch.sin_(a))
print(a)

a = torch.ones(2, 2)
b = torch.full((2, 2), 0.5)
print('Before:')
print(a)
print(b)
print('\nAfter adding:')
print(a.add_(b))
print(a)
print(b)
print('\nAfter multiplying')
print(b.mul_(b))
print(b)

a = torch.linspace(0, 1, 4).reshape(2, 2)
b = torch.linspace(1, 2, 4).reshape(2, 2)
c = torch.zeros(2, 2)
old_id = id(c)
print(c)
d = torch.matmul(a, b, out=c)
print(c)
assert c is d
assert id(c) == old_id
torch.add(a, b, out=c)
print(c)
assert id(c) == old_id

a = torch.ones(2, 2)
b = a
a[0][1] = 561
print(b)
a = torch.ones(2, 2)
b = a.clone()
assert b is not a
print(torch.eq(a, b))
a[0][1] = 561
print(b)

a = torch.linspace(0, 1, 4).reshape(2, 2).requires_grad_()
print(a)
b = a.clone()
print(b)
c = a.detach().clone()
print(c)
print(a)

a = torch.ones(3, 226, 226)
b = a.unsqueeze(0)
print(a.shape)
print(b.shape)
c = torch.ones(1, 1, 1, 1, 1)
print(c)
a = torch.ones(1, 20)
print(a.shape)
b = a.squeeze(0)
print(b.shape)
c = torch.ones(2, 2)
print(c.shape)
d = c.squeeze(0)
print(d.shape)
a = torch.ones(4, 3, 2)
c = a * torch.ones(3, 1)
print(c.shape)
output3d = torch.ones(6, 20, 20)
input1d = output3d.reshape(6 * 20 * 20)
print(input1d.shape)
print(torch.reshape(output3d, (6 * 20 * 20,)).shape)

numpy_array = np.ones((2, 3))
print(numpy_array)
pytorch_tensor = torch.from_numpy(numpy_array)
print(pytorch_tensor)
numpy_array[1, 1] = 23
print(pytorch_tensor)
pytorch_rand = torch.linspace(0, 1, 6).reshape(2, 3)
numpy_rand = pytorch_rand.numpy()
print(numpy_rand)
pytorch_rand[1, 1] = 17
print(numpy_rand)
