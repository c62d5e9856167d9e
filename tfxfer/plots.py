"""PNG figures of a run: training curves, confusion matrix, label budgets.

Drawn on `matplotlib.figure.Figure` objects (no pyplot, so no global
backend or open-figure state); each function writes `path` and returns it.

>>> import tempfile, os
>>> folder = tempfile.mkdtemp()
>>> path = training_curves({"head": {"loss": [1.2, 0.8], "accuracy": [0.5, 0.7]},
...                         "fine_tune": {"loss": [0.6], "accuracy": [0.8]}},
...                        os.path.join(folder, "curves.png"))
>>> open(path, "rb").read(4) == b"\\x89PNG"
True
"""

import os

import numpy as np
from matplotlib.figure import Figure

__all__ = ["confusion_matrix", "label_budgets", "training_curves"]


def _save(figure, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def _as_logs(history):
    return history.history if hasattr(history, "history") else dict(history)


def training_curves(stages, path):
    """Loss and accuracy per epoch, stage after stage (e.g. head, then
    fine-tuning), validation dashed, a line where each stage starts.

    Args:
        stages: `{stage name: keras History or {metric: [value per epoch]}}`,
            in training order; stages that did not run may be None.
        path: the PNG to write.
    """
    stages = {name: _as_logs(h) for name, h in stages.items() if h is not None}
    metrics = [m for m in ("loss", "accuracy") if any(m in logs for logs in stages.values())]
    if not metrics:
        raise ValueError(f"No loss or accuracy in the histories given (stages: {list(stages)}).")
    figure = Figure(figsize=(5 * len(metrics), 3.6))
    for index, metric in enumerate(metrics):
        axes = figure.add_subplot(1, len(metrics), index + 1)
        start = 0
        for stage, (name, logs) in enumerate(stages.items()):
            values = logs.get(metric, [])
            epochs = np.arange(start + 1, start + len(values) + 1)
            color = f"C{stage}"
            axes.plot(epochs, values, "o-", color=color, label=f"{name} (train)")
            if f"val_{metric}" in logs:
                axes.plot(epochs, logs[f"val_{metric}"], "s--", color=color, label=f"{name} (validation)")
            if stage:
                axes.axvline(start + 0.5, color="grey", lw=0.8)
            start += len(values)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    return _save(figure, path)


def confusion_matrix(labels, predictions, class_names, path, title=None):
    """The confusion matrix of integer `labels` vs. `predictions` (scikit-learn's
    display), rows normalised to the share of each true class."""
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.0, 0.45 * len(class_names) + 2)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.add_subplot()
    ConfusionMatrixDisplay.from_predictions(
        labels,
        predictions,
        labels=np.arange(len(class_names)),
        display_labels=class_names,
        normalize="true",
        values_format=".2f",
        ax=axes,
        colorbar=False,
        xticks_rotation="vertical",
        include_values=len(class_names) <= 12,
    )
    accuracy = float(np.mean(np.asarray(labels) == np.asarray(predictions)))
    axes.set_title(f"{title + ': ' if title else ''}accuracy {100 * accuracy:.1f}%")
    return _save(figure, path)


def label_budgets(results, path, title=""):
    """Accuracy against labels per class, one line per strategy (e.g. from
    scratch, linear probe, fine-tuning), mean ± std over seeds.

    Args:
        results: `{(strategy, labels per class): [accuracy per seed]}`, as
            `tfxfer.demo.run` returns.
    """
    strategies = list(dict.fromkeys(strategy for strategy, _ in results))
    budgets = sorted({budget for _, budget in results})
    figure = Figure(figsize=(5.5, 3.8))
    axes = figure.add_subplot()
    for strategy in strategies:
        scores = [100 * np.asarray(results[(strategy, b)]) for b in budgets]
        axes.errorbar(
            budgets, [s.mean() for s in scores], yerr=[s.std() for s in scores], marker="o", capsize=3, label=strategy
        )
    axes.set_xticks(budgets)
    axes.set_xlabel("labelled examples per class")
    axes.set_ylabel("test accuracy %")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return _save(figure, path)
