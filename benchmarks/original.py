"""The pipeline this project replaced, re-created as the baseline of `benchmarks.epoch`: a PyTorch DataLoader over per-sample PIL images.

torchvision cannot be installed beside the CPU build of PyTorch, so `RotatedMNIST` does by hand what
`RandomRotation(10)`, `ToTensor()` and `Normalize((0.1307,), (0.3081,))` do to each image.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mnist_common import cli, run
from mnist_data import load_mnist
from torch_ref.model import Net
from torch_ref.train import select_device

BATCH_SIZE = 32
LR = 0.002  # constant: the original used no schedule
MAX_DEGREES = 10.0
MEAN, STD = 0.1307, 0.3081
EVAL_BATCH_SIZE = 1000
NUM_WORKERS = 0  # NOTE: DataLoader's default. The original's worker count is unknown, and workers would overlap image preparation with training.


class RotatedMNIST(torch.utils.data.Dataset):
    """MNIST as torchvision serves it: each uint8 image becomes a PIL image, randomly rotated, then a normalized tensor."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, max_degrees: float):
        self.images = images
        self.labels = labels
        self.max_degrees = max_degrees

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = Image.fromarray(self.images[index])  # a 2-D uint8 array gives mode "L"
        if self.max_degrees:
            # RandomRotation draws the angle from torch's generator and rotates with nearest-neighbour resampling, filling with 0.
            angle = float(torch.empty(1).uniform_(-self.max_degrees, self.max_degrees))
            image = image.rotate(angle, resample=Image.Resampling.NEAREST, fillcolor=0)
        x = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).unsqueeze(0).float().div(255)  # ToTensor
        x = x.sub(MEAN).div(STD)  # Normalize
        return x, int(self.labels[index])


def train_epoch(model: Net, optimizer: torch.optim.Optimizer, loader: torch.utils.data.DataLoader, device: torch.device) -> tuple[float, float]:
    """Train one epoch the way a typical loop does, reading the loss and correct count with `.item()` every step."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    return total_loss / seen, correct / seen


@torch.inference_mode()
def evaluate(model: Net, loader: torch.utils.data.DataLoader, device: torch.device) -> float:
    """Return the accuracy over a loader."""
    model.eval()
    correct, seen = 0, 0
    for x, y in loader:
        correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
        seen += len(y)
    return correct / seen


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.original", description="Train one epoch of the original DataLoader pipeline and write its timing as JSON.")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu", "cuda"], default="auto", help="'auto' picks CUDA when present (default auto)")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0, help="seed of initialization, shuffling and rotation angles (default 0)")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding the four MNIST IDX files (default: as the trainers find them)")
    args = parser.parse_args(argv)
    device = select_device(args.device)

    train_images, train_labels = load_mnist("train", data_dir=args.data_dir)
    test_images, test_labels = load_mnist("test", data_dir=args.data_dir)
    train_loader = torch.utils.data.DataLoader(RotatedMNIST(train_images, train_labels, MAX_DEGREES), batch_size=BATCH_SIZE, shuffle=True, num_workers=NUM_WORKERS)
    test_loader = torch.utils.data.DataLoader(RotatedMNIST(test_images, test_labels, 0.0), batch_size=EVAL_BATCH_SIZE, num_workers=NUM_WORKERS)
    torch.manual_seed(args.seed)
    model = Net().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)

    print(f"original pipeline: training on {device}, batch {BATCH_SIZE}, {NUM_WORKERS} loader workers", file=sys.stderr)
    start = time.perf_counter()
    train_loss, running_train_accuracy = train_epoch(model, optimizer, train_loader, device)
    seconds = time.perf_counter() - start
    test_accuracy = evaluate(model, test_loader, device)

    result = {
        "pipeline": "original",
        "device": str(device),
        "batch_size": BATCH_SIZE,
        "lr": LR,
        "num_workers": NUM_WORKERS,
        "images": len(train_images),
        "epoch_seconds": seconds,
        "running_train_loss": train_loss,
        "running_train_accuracy": running_train_accuracy,
        "test_accuracy": test_accuracy,
    }
    run.write_json(args.out, result)
    print(f"original pipeline: {seconds:.1f} s, running train acc {100 * running_train_accuracy:.2f}%, test acc {100 * test_accuracy:.2f}%", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
