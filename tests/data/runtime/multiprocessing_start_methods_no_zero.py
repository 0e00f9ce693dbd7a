# The same training, without a zero, in a multiprocessing child started with
# each start method: fork, spawn and forkserver.
# child processes: 3
import multiprocessing

import torch
import torch.nn as nn


def train():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for i in range(3):
        nn.functional.mse_loss(model(torch.randn(8, 4)), torch.randn(8, 1)).backward()
        optimizer.step()  # expect: ZG001


if __name__ == "__main__":
    for method in ("fork", "spawn", "forkserver"):
        child = multiprocessing.get_context(method).Process(target=train)
        child.start()
        child.join()
        assert child.exitcode == 0, (method, child.exitcode)
