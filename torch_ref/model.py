"""The canonical PyTorch model: three valid 3x3 convolutions, two 2x2 max pools, two dense layers."""

import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    """MNIST CNN of 13,498 parameters: 28x28 -> 26 -> 13 -> 11 -> 5 -> 3, then 144 -> 64 -> 10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3)
        self.conv2 = nn.Conv2d(8, 16, 3)
        self.conv3 = nn.Conv2d(16, 16, 3)
        self.fc1 = nn.Linear(16 * 3 * 3, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map normalized images (N, 1, 28, 28) to logits (N, 10)."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 11x11 -> 5x5: pooling drops the last row and column
        x = F.relu(self.conv3(x))
        x = torch.flatten(x, 1)  # channel-major: C, H, W
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def layer_param_counts(model: nn.Module) -> dict[str, int]:
    """Count parameters per layer, keyed by layer name ('conv1', ..., 'fc2')."""
    counts: dict[str, int] = {}
    for name, param in model.named_parameters():
        layer = name.split(".")[0]
        counts[layer] = counts.get(layer, 0) + param.numel()
    return counts
