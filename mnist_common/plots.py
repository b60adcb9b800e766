"""Figures of a run that both backends write from the same code: training curves, the test confusion matrix and the misclassified test digits."""

from pathlib import Path

import numpy as np
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure  # a bare Figure renders through Agg, so no display or pyplot state is needed
from matplotlib.lines import Line2D

from mnist_common.files import atomic_path

N_CLASSES = 10
MAX_MISTAKES = 64
SMOOTHING_STEPS = 200  # max window of the moving mean drawn over the per-step training loss
COLORS = ("tab:blue", "tab:orange")
TEST_STYLE = {"marker": "o", "markersize": 6, "markeredgecolor": "black", "linestyle": "--", "linewidth": 1}  # end-of-epoch test figures
TRAIN_STYLE = {"marker": "s", "markersize": 6, "markerfacecolor": "none", "linestyle": "none"}  # end-of-epoch train accuracy


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Count test examples by (true class, predicted class): rows are true classes, columns predictions."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in shape")
    counts = np.bincount(labels * n_classes + predictions, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Return class probabilities in float64, stable for large logits."""
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def select_mistakes(labels: np.ndarray, logits: np.ndarray, limit: int = MAX_MISTAKES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick up to `limit` misclassified examples, most confident first.

    Returns (indices, predictions, confidences): the probability the model gave its wrong prediction.
    Ties in confidence keep dataset order, so the choice is deterministic.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = softmax(logits)
    predictions = probabilities.argmax(axis=-1)
    confidences = probabilities.max(axis=-1)
    wrong = np.flatnonzero(predictions != labels)
    order = wrong[np.argsort(-confidences[wrong], kind="stable")][:limit]
    return order, predictions[order], confidences[order]


def step_batch_sizes(record: dict, batch_size: int) -> np.ndarray:
    """Return the number of examples of each training step of one epoch record.

    Every step has `batch_size` examples except possibly the last. The record does not store the
    train-set size, but running_train_accuracy = sum(step_correct) / examples seen, so the last
    step's size follows from it.
    """
    steps = len(record["step_correct"])
    sizes = np.full(steps, batch_size, dtype=np.int64)
    correct = int(np.sum(record["step_correct"]))
    if steps and correct and record["running_train_accuracy"] > 0:
        seen = round(correct / record["running_train_accuracy"])
        last = seen - (steps - 1) * batch_size
        if 0 < last <= batch_size:
            sizes[-1] = last
    return sizes


def running_accuracy(record: dict, batch_size: int) -> np.ndarray:
    """Return the training accuracy after each step of one epoch, counted from the epoch's first step."""
    correct = np.cumsum(np.asarray(record["step_correct"], dtype=np.int64))
    return correct / np.cumsum(step_batch_sizes(record, batch_size))


def moving_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Return the trailing mean over up to `window` values; the first points average what exists so far."""
    values = np.asarray(values, dtype=np.float64)
    totals = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (totals[ends] - totals[starts]) / (ends - starts)


def save_figure(figure: Figure, path: Path) -> Path:
    """Write `figure` as a PNG through a temporary file in the same folder, then rename it into place."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    return path


def smoothing_window(metrics: dict) -> int:
    """Return the loss smoothing window in steps: 200, or a tenth of the run when that is shorter."""
    steps = sum(len(record["step_loss"]) for record in metrics["epochs"])
    return max(1, min(SMOOTHING_STEPS, steps // 10))


def plot_run_curves(loss_axes, accuracy_axes, metrics: dict, color: str, label_row: int = 0) -> np.ndarray:
    """Draw one run's loss and accuracy curves on two axes, against fractional epochs; return the smoothed loss."""
    batch_size = metrics["config"]["batch_size"]
    step_x, step_loss = [], []
    for number, record in enumerate(metrics["epochs"]):
        steps = len(record["step_loss"])
        x = number + np.arange(1, steps + 1) / max(steps, 1)
        step_x.append(x)
        step_loss.append(np.asarray(record["step_loss"], dtype=np.float64))
        # Running accuracy restarts each epoch, so each epoch is its own line, noisy over its first steps.
        accuracy_axes.plot(x, 100 * running_accuracy(record, batch_size), color=color, linewidth=1.2)

    step_x = np.concatenate(step_x)
    step_loss = np.concatenate(step_loss)
    smoothed = moving_mean(step_loss, smoothing_window(metrics))
    loss_axes.plot(step_x, step_loss, color=color, alpha=0.08, linewidth=0.5)
    loss_axes.plot(step_x, smoothed, color=color, linewidth=1.5)

    epoch_x = [record["epoch"] for record in metrics["epochs"]]
    test_loss = [record["test_loss"] for record in metrics["epochs"]]
    train = [100 * record["train_accuracy"] for record in metrics["epochs"]]
    test = [100 * record["test_accuracy"] for record in metrics["epochs"]]
    loss_axes.plot(epoch_x, test_loss, color=color, **TEST_STYLE)
    accuracy_axes.plot(epoch_x, train, color=color, **TRAIN_STYLE)
    accuracy_axes.plot(epoch_x, test, color=color, **TEST_STYLE)
    for x, y in zip(epoch_x, test):
        offset = (-4, -14 - 12 * label_row)  # each run's labels get their own row below the points
        accuracy_axes.annotate(f"{y:.2f}%", (x, y), textcoords="offset points", xytext=offset, ha="right", fontsize=8, color=color)
    return smoothed


def accuracy_floor(runs: list[tuple[str | None, dict]]) -> float:
    """Return a lower y limit (percent) that skips the first tenth of the first epoch, where accuracy climbs from chance."""
    lows = []
    for _, metrics in runs:
        record = metrics["epochs"][0]
        running = running_accuracy(record, metrics["config"]["batch_size"])
        lows.append(100 * running[len(running) // 10 :].min() if len(running) else 0.0)
        lows.extend(100 * epoch["test_accuracy"] for epoch in metrics["epochs"])
    return max(0.0, np.floor(min(lows)) - 1.0)


def write_curves(path: Path, runs: list[tuple[str | None, dict]], title: str) -> Path:
    """Plot training loss and accuracies of one or more runs, overlaid, into `path`."""
    figure = Figure(figsize=(11, 4.2), dpi=100, layout="constrained")
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    smoothed = [plot_run_curves(loss_axes, accuracy_axes, metrics, color, number) for number, ((_, metrics), color) in enumerate(zip(runs, COLORS))]

    epochs = max(len(metrics["epochs"]) for _, metrics in runs)
    for axes in (loss_axes, accuracy_axes):
        axes.set_xlabel("epoch")
        axes.set_xlim(0, epochs)
        axes.grid(alpha=0.3)
    # Per-step losses span five decades, so the y range follows the smoothed curves and clips the faint raw losses.
    loss_axes.set_yscale("log")
    loss_values = np.concatenate(smoothed + [[record["test_loss"] for record in metrics["epochs"]] for _, metrics in runs])
    loss_axes.set_ylim(loss_values.min() / 2, loss_values.max() * 1.5)
    loss_axes.set_ylabel("cross-entropy loss (log scale)")
    loss_axes.set_title("loss (faint: each training step)", fontsize=10)
    # The legends describe line styles; with several runs, a figure legend maps colors to runs.
    style_color = COLORS[0] if len(runs) == 1 else "0.4"
    window = "/".join(sorted({str(smoothing_window(metrics)) for _, metrics in runs}))
    loss_axes.legend(handles=[
        Line2D([], [], color=style_color, linewidth=1.5, label=f"train loss, mean of last {window} steps"),
        Line2D([], [], color=style_color, **TEST_STYLE, label="test loss (end of epoch)"),
    ], loc="best", fontsize=8)
    accuracy_axes.set_ylim(accuracy_floor(runs), 100)
    accuracy_axes.set_ylabel("accuracy (%)")
    accuracy_axes.set_title("accuracy (y axis skips the first tenth of epoch 1)", fontsize=10)
    accuracy_axes.legend(handles=[
        Line2D([], [], color=style_color, linewidth=1.2, label="running train accuracy (restarts each epoch)"),
        Line2D([], [], color=style_color, **TRAIN_STYLE, label="train accuracy (end of epoch)"),
        Line2D([], [], color=style_color, **TEST_STYLE, label="test accuracy (end of epoch)"),
    ], loc="best", fontsize=8)
    if len(runs) > 1:
        figure.legend(handles=[Line2D([], [], color=color, linewidth=3, label=label) for (label, _), color in zip(runs, COLORS)],
                      loc="outside lower center", ncol=len(runs), fontsize=9)
    figure.suptitle(title)
    return save_figure(figure, path)


def write_confusion(path: Path, matrix: np.ndarray, title: str) -> Path:
    """Draw the confusion matrix with counts in the cells and shading by row-normalized share."""
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(7.2, 6.4), dpi=100, layout="constrained")
    axes = figure.subplots()
    # A power norm lifts the small off-diagonal shares into view; the diagonal alone would use the whole scale.
    image = axes.imshow(shares, cmap="Blues", norm=PowerNorm(gamma=0.35, vmin=0, vmax=1))
    for true in range(matrix.shape[0]):
        for predicted in range(matrix.shape[1]):
            count = matrix[true, predicted]
            if count == 0:
                continue
            dark = shares[true, predicted] > 0.3
            axes.text(predicted, true, str(count), ha="center", va="center", fontsize=8, color="white" if dark else "black")

    classes = np.arange(matrix.shape[0])
    row_accuracy = np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)
    axes.set_xticks(classes, [str(c) for c in classes])
    axes.set_yticks(classes, [f"{c}  ({100 * a:.1f}%)" for c, a in zip(classes, row_accuracy)])
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class  (share classified correctly)")
    figure.suptitle(title, fontsize=10)
    colorbar = figure.colorbar(image, ax=axes, shrink=0.85)
    colorbar.set_label("share of the true class's test images (power scale)")
    return save_figure(figure, path)


def write_mistakes(path: Path, images: np.ndarray, labels: np.ndarray, logits: np.ndarray, title: str) -> Path:
    """Draw a grid of up to 64 misclassified test digits, labelled "true → predicted (confidence)"."""
    indices, predictions, confidences = select_mistakes(labels, logits)
    n_wrong = int(np.sum(np.argmax(logits, axis=-1) != np.asarray(labels)))
    columns = 8
    rows = max(1, -(-len(indices) // columns))
    figure = Figure(figsize=(columns * 1.15, rows * 1.3 + 0.6), dpi=100, layout="constrained")
    shown_text = "all shown" if len(indices) == n_wrong else f"the {len(indices)} most confident shown"
    figure.suptitle(f"{title}\n{n_wrong:,} of {len(labels):,} test digits misclassified, {shown_text}", fontsize=10)
    if len(indices) == 0:
        axes = figure.subplots()
        axes.axis("off")
        axes.text(0.5, 0.5, "no misclassified test digits", ha="center", va="center")
        return save_figure(figure, path)

    grid = figure.subplots(rows, columns, squeeze=False)
    for slot, axes in enumerate(grid.flat):
        axes.axis("off")
        if slot >= len(indices):
            continue
        index = indices[slot]
        axes.imshow(images[index], cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
        axes.set_title(f"{labels[index]} → {predictions[slot]} ({confidences[slot]:.2f})", fontsize=8, pad=2)
    return save_figure(figure, path)


def run_title(metrics: dict) -> str:
    last = metrics["epochs"][-1]
    return (
        f"{metrics['backend']} on {metrics['device']} ({metrics['dtype']}), seed {metrics['seed']}, "
        f"{len(metrics['epochs'])} epoch(s)\ntest accuracy {100 * last['test_accuracy']:.2f}%"
    )


def write_run_plots(out: Path, metrics: dict, test_images: np.ndarray, test_labels: np.ndarray, test_logits: np.ndarray) -> list[Path]:
    """Write curves.png, confusion.png and mistakes.png of a finished run into `out`; return their paths."""
    out = Path(out)
    title = run_title(metrics)
    test_logits = np.asarray(test_logits)
    test_labels = np.asarray(test_labels)
    predictions = test_logits.argmax(axis=-1)
    return [
        write_curves(out / "curves.png", [(None, metrics)], title),
        write_confusion(out / "confusion.png", confusion_matrix(test_labels, predictions), title),
        write_mistakes(out / "mistakes.png", np.asarray(test_images), test_labels, test_logits, title),
    ]
