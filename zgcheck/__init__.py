"""zgcheck: find missing and misplaced zero_grad() in PyTorch training code."""

__version__ = "0.1.0"
