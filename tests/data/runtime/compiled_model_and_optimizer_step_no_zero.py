# A compiled model and a compiled optimizer step (Adam, as compiled
# optimizers usually are), called in an eager loop without a zero.
import torch
import torch.nn as nn

torch.manual_seed(0)
model = torch.compile(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)), backend="eager")
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
step = torch.compile(optimizer.step, backend="eager")

for i in range(4):
    loss = nn.functional.mse_loss(model(torch.randn(8, 4)), torch.randn(8, 1))
    loss.backward()
    step()  # expect: ZG001
