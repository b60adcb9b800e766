"""The canonical PyTorch MNIST CNN and its trainer."""
