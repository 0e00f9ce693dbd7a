# A whole train step compiled with torch.compile: backward and step happen
# inside the compiled function, and nothing ever zeroes the gradients.
# (backend="eager": Dynamo traces as with the default backend, without the
# C++ compile that would make the test slow.) It imports torch.distributed,
# whose module holds deprecated attributes that naming the parameters must not
# touch (no FutureWarning on stderr).
import torch
import torch.distributed as dist  # noqa: F401
import torch.nn as nn

torch.manual_seed(0)
model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)


@torch.compile(backend="eager")
def train_step(x, y):
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()  # expect: ZG001


for i in range(4):
    train_step(torch.randn(8, 4), torch.randn(8, 1))
