"""Start the service: `python -m serve --help`."""

import argparse
import logging
from pathlib import Path

from mnist_common.cli import positive_int
from serve.backends import BACKEND_CHOICES

LOG_LEVELS = ("debug", "info", "warning", "error")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m serve",
        description="Serve the MNIST classifier over HTTP: a drawing page at /, the API and its documentation at /docs.",
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="model.safetensors saved by either backend (default: the newest RUNS_DIR/*/model.safetensors; when there is none, train the default JAX model once into RUNS_DIR)")
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="both", help="backend(s) that predict each request's digit (default both)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default 8000)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="folder searched for the newest run when --checkpoint is not given (default runs)")
    parser.add_argument("--torch-threads", type=positive_int, default=1, help="PyTorch intra-op threads (default 1: one image is too small to split, and idle-spinning threads slow the server down on a small CPU)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="'warning' hides the per-request access log but keeps rejected requests (default info)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import uvicorn

    from mnist_common.checkpoint import CheckpointError
    from serve.app import create_app
    from serve.checkpoints import find_or_train_checkpoint

    checkpoint = args.checkpoint or find_or_train_checkpoint(args.runs_dir)
    if args.backend in ("torch", "both"):
        import torch

        torch.set_num_threads(args.torch_threads)
    try:
        app = create_app(checkpoint, args.backend)
    except CheckpointError as error:
        raise SystemExit(f"python -m serve: {error}; pass --checkpoint PATH/model.safetensors from a run of either trainer") from None
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
