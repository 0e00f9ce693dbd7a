# One LBFGS step, not in a loop: with max_iter=5 the optimizer evaluates the
# closure up to five times, reading the gradients after each evaluation; the
# closure never zeroes, so each evaluation adds onto the gradients LBFGS has
# already used.
import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Linear(4, 1)
optimizer = torch.optim.LBFGS(model.parameters(), lr=0.1, max_iter=5)
x, y = torch.randn(16, 4), torch.randn(16, 1)


def closure():
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    return loss


optimizer.step(closure)  # expect: ZG001
