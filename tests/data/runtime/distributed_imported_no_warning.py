# Imports torch.distributed (whose module holds deprecated attributes) and
# trains without a zero: the report names the parameters, and no
# FutureWarning from reading the module's attributes reaches stderr.
import torch
import torch.distributed as dist
import torch.nn as nn

torch.manual_seed(0)
model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for i in range(3):
    nn.functional.mse_loss(model(torch.randn(8, 4)), torch.randn(8, 1)).backward()
    optimizer.step()  # expect: ZG001
assert dist.is_available()
