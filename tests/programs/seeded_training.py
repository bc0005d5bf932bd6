"""In the style of many textbook examples: seed the generator, make data with randn, start a
model from its default initialisation, and train it, printing losses and the weights. With
PyTorch's generator these numbers are reproducible, so symgrad must print the same ones."""
import torch
from torch import nn

torch.manual_seed(42)
X = torch.randn(100, 3)
true_w = torch.tensor([[2.0], [-3.4], [1.5]])
y = X @ true_w + 4.2 + 0.01 * torch.randn(100, 1)
print(X[:2])
print(y[:3])

model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
print(model[0].weight)
print(model[2].bias)
loss_fn = nn.MSELoss()
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
for epoch in range(30):
    perm = torch.randperm(100)
    for k in range(0, 100, 25):
        idx = perm[k:k + 25]
        opt.zero_grad()
        loss = loss_fn(model(X[idx]), y[idx])
        loss.backward()
        opt.step()
    if epoch % 10 == 9:
        print(f"epoch {epoch + 1}: loss {loss_fn(model(X), y).item():.4f}")

w = torch.empty(2, 5)
nn.init.xavier_uniform_(w)
print(w)
print(torch.normal(0.0, 2.0, size=(2, 3)))
