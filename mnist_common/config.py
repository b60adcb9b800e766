"""The one training config both backends import, so their hyperparameters cannot drift apart."""

import dataclasses

from mnist_data import MNIST_MEAN, MNIST_STD

RECIPE = "Adam, rate 0.004 decaying linearly to 0 over all steps, batch 16"


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyperparameters, seed and normalization of one training run."""

    batch_size: int = 16
    epochs: int = 1
    seed: int = 0
    optimizer: str = "adam"
    lr: float = 0.004  # peak rate, at step 0
    lr_schedule: str = "linear"  # decays to 0 at the last step of the last epoch
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-8  # added outside the square root, as in torch.optim.Adam and optax.adam
    mean: float = MNIST_MEAN
    std: float = MNIST_STD

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    """Count the batches of one epoch, the last one possibly partial."""
    return -(-n_examples // batch_size)


def learning_rate(step, total_steps: int, peak_lr: float):
    """Return the rate at `step` (0-based) of linear decay from `peak_lr` to 0 at `total_steps`.

    Works on Python numbers and on traced JAX values alike, so both backends share one formula.
    """
    return peak_lr * (1.0 - step / total_steps)
