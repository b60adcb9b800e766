"""The command line both trainers share, so `torch_ref.train` and `jax_impl.train` take identical flags."""

import argparse
import datetime
import sys
from collections.abc import Callable
from pathlib import Path

from mnist_common.config import Config


def parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    value = parse_int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = parse_int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: the program, the flag at fault and the reason."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def train_parser(backend: str) -> argparse.ArgumentParser:
    """Build the argument parser of a trainer; every default comes from `Config`."""
    default = Config()
    parser = OneLineParser(
        prog=f"python -m {backend}.train",
        description=f"Train the MNIST CNN with {'PyTorch' if backend == 'torch_ref' else 'JAX/Flax'} and save its metrics and weights.",
    )
    parser.add_argument("--epochs", type=positive_int, default=default.epochs, help=f"epochs to train (default {default.epochs})")
    parser.add_argument("--batch-size", type=positive_int, default=default.batch_size, help=f"examples per step (default {default.batch_size})")
    parser.add_argument("--lr", type=positive_float, default=default.lr, help=f"peak Adam learning rate, decayed linearly to 0 (default {default.lr})")
    parser.add_argument("--seed", type=non_negative_int, default=default.seed, help=f"seed of initialization and shuffling (default {default.seed})")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding the four MNIST IDX files (default: MNIST_DATA_DIR, then the user cache, then download)")
    parser.add_argument("--data-source", choices=["auto", "tfds"], default="auto", help="'tfds' loads MNIST through tensorflow-datasets (default auto)")
    parser.add_argument("--out", type=Path, default=None, help="run folder for metrics.json and model.safetensors (default: a new folder under runs/)")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu", "cuda"], default="auto", help="'auto' picks a GPU when one is present, else the CPU; 'cuda' is an alias of 'gpu' (default auto)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="dtype of params and computation (default float32)")
    parser.add_argument("--init-from", type=Path, default=None, help="start from the weights of a model.safetensors saved by either backend")
    parser.add_argument("--no-plots", action="store_true", help="skip writing curves.png, confusion.png and mistakes.png")
    parser.add_argument("--dry-run", action="store_true", help="smoke test: train 20 steps and evaluate on 1,000 images per split")
    return parser


def check_out_dir(out: Path) -> Path:
    """Fail before training, not after, when the run folder cannot be created."""
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out}: exists and is not a folder; pass a folder path")
    return out


def config_from_args(args: argparse.Namespace) -> Config:
    return Config(batch_size=args.batch_size, epochs=args.epochs, seed=args.seed, lr=args.lr)


def default_run_dir(backend: str, runs_dir: Path = Path("runs")) -> Path:
    """Return a new, not yet existing folder under `runs_dir` named after the backend and the time."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(runs_dir) / f"{backend}-{stamp}"
    candidate, suffix = base, 1
    while candidate.exists():
        suffix += 1
        candidate = base.with_name(f"{base.name}-{suffix}")
    return candidate


def run_main(main: Callable[[], object], prog: str) -> None:
    """Call `main`, turning the product's own input errors into one line on stderr and exit status 1."""
    from mnist_common.checkpoint import CheckpointError
    from mnist_data.cache import ChecksumError
    from mnist_data.fetch import FetchError
    from mnist_data.idx import IDXError
    from parity.convert import ConversionError

    try:
        main()
    except (CheckpointError, ConversionError, ChecksumError, FetchError, IDXError, FileNotFoundError) as error:
        sys.exit(f"{prog}: error: {error}")
