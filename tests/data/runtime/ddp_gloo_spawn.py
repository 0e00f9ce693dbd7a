# DistributedDataParallel with the gloo backend on CPU, two ranks started by
# torch.multiprocessing.spawn; each rank trains without zeroing. Then two more
# ranks train the same way with optimizer.zero_grad(), and are clean: the
# finding names only the first two processes.
# child processes: 2
# ranks: 0, 1
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel


def train(rank, world_size, port, zero):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    torch.manual_seed(rank)
    model = DistributedDataParallel(nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for i in range(3):
        if zero:
            optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(torch.randn(8, 4)), torch.randn(8, 1))
        loss.backward()
        optimizer.step()  # expect: ZG001
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    for zero in (False, True):
        mp.spawn(train, args=(2, free_port(), zero), nprocs=2)
