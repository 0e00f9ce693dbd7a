# Trains without a zero; run as a script by ../subprocess_same_interpreter.py
# and as a multiprocessing target by ../multiprocessing_start_methods_no_zero.py.
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
    train()
