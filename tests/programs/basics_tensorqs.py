"""In the style of the basics tutorial's tensor page: attributes, devices, indexing,
joining, arithmetic three ways, single-element tensors and in-place operations."""
import torch

device = "cuda" if torch.cuda.is_available() else "cpu"
print(f"Using {device} device")

tensor = torch.arange(12, dtype=torch.float32).reshape(3, 4)
tensor = tensor.to(device)
print(tensor.device, tensor.is_cuda)
print(f"Shape of tensor: {tensor.shape}")
print(f"Datatype of tensor: {tensor.dtype}")
print(tensor)
print(f"First row: {tensor[0]}")
print(f"First column: {tensor[:, 0]}")
print(f"Last column: {tensor[..., -1]}")
tensor[:, 1] = 0
print(tensor)

t1 = torch.cat([tensor, tensor, tensor], dim=1)
print(t1)
t2 = torch.stack([tensor, tensor])
print(t2.shape, t2.size(), t2.size(0), t2.ndim, t2.dim())

y1 = tensor @ tensor.T
y2 = tensor.matmul(tensor.T)
y3 = torch.rand_like(y1)
torch.matmul(tensor, tensor.T, out=y3)
print(y1)
print(torch.equal(y1, y2), torch.equal(y1, y3))

z1 = tensor * tensor
z2 = tensor.mul(tensor)
z3 = torch.rand_like(tensor)
torch.mul(tensor, tensor, out=z3)
print(z1)
print(torch.allclose(z1, z2), torch.allclose(z1, z3))

agg = tensor.sum()
agg_item = agg.item()
print(agg, agg_item, type(agg_item))
print(tensor.mean(), tensor.max(), tensor.min(), tensor.argmax())
print(tensor.sum(dim=0), tensor.sum(1, keepdim=True))
print(tensor.mean(dim=1))

print(f"{tensor} \n")
tensor.add_(5)
print(tensor)
tensor.mul_(0.5)
print(tensor)
tensor.sub_(torch.ones(4))
print(tensor)
tensor.add_(other=torch.ones(4))
print(tensor)
print(tensor.shape)

x = torch.tensor([[0.5, -1.25], [2.0, 3.0]], dtype=torch.float64)
print(x)
print(x.dtype == torch.float64, x.double().dtype == torch.double, x.float().dtype == torch.float, x.long())
print(x.to(torch.float32), x.to(torch.float32).dtype, x.int().dtype)
print(torch.zeros(2, 3, dtype=torch.int64))
print(torch.full((2, 2), 7.5))
print(torch.eye(3))
print(torch.tensor(3.25), torch.tensor(7), torch.tensor(True))
print(torch.tensor([True, False]))
print(torch.tensor([1.5, 2.5]).tolist(), torch.tensor([[1, 2]]).tolist())
print(torch.tensor([1e-5, 1.0, 100.0]))
print(torch.tensor([1e10, 1.0]))
print(torch.tensor([1.0, 2.0, float("inf"), float("nan")]))
print(torch.arange(0, 2000, 1.0))
print(torch.linspace(0, 1, 11))
