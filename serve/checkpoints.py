"""Find the checkpoint to serve when none is given: the newest run under runs/, else a default JAX model trained once."""

import json
import logging
from pathlib import Path

from mnist_common.cli import default_run_dir

logger = logging.getLogger("serve")

CHECKPOINT_NAME = "model.safetensors"


def is_dry_run(run_dir: Path) -> bool:
    """Tell whether the run in `run_dir` was a 20-step `--dry-run` smoke test, per its metrics.json."""
    try:
        return bool(json.loads((run_dir / "metrics.json").read_text()).get("dry_run"))
    except (OSError, ValueError, AttributeError):
        return False


def newest_checkpoint(runs_dir: Path) -> Path | None:
    """Return the most recently written `runs_dir/*/model.safetensors` of a real run (dry runs skipped), or None."""
    candidates = [path for path in Path(runs_dir).glob(f"*/{CHECKPOINT_NAME}") if path.is_file() and not is_dry_run(path.parent)]
    return max(candidates, key=lambda path: path.stat().st_mtime, default=None)


def find_or_train_checkpoint(runs_dir: Path = Path("runs")) -> Path:
    """Return the newest checkpoint under `runs_dir`; when there is none, train the default JAX model once and return its checkpoint."""
    checkpoint = newest_checkpoint(runs_dir)
    if checkpoint is not None:
        logger.info("serving the newest checkpoint under %s/: %s", runs_dir, checkpoint)
        return checkpoint

    from jax_impl import train

    out = default_run_dir(train.BACKEND, runs_dir)
    logger.warning("no %s under %s/; training the default JAX model once (one epoch) into %s", CHECKPOINT_NAME, runs_dir, out)
    train.main(["--out", str(out)])
    return out / CHECKPOINT_NAME
