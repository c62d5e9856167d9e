"""The folder one training run writes: what was asked, what happened.

    runs/<name>/
        config.json        the arguments of the run and the library versions
        metrics.csv        one row per epoch: stage, epoch, loss, accuracy, val_...
        metrics.json       the same per stage, plus the final test figures
        logs/<stage>/      TensorBoard event files (`tensorboard --logdir runs/<name>/logs`)
        checkpoints/       `fine_tune`'s backups: rerun the command to resume
        plots/curves.png, plots/confusion.png
        model.keras        the trained model
        export/            SavedModel serving raw inputs (`tfxfer.export`)

Only the chief writes in a multi-worker cluster (`tfxfer.distribute.is_chief`).
"""

import csv
import json
import os
import platform

from tfxfer import plots
from tfxfer.distribute import is_chief


class RunFolder:
    """Paths and writers of one run's folder (created on first write)."""

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        self.checkpoints = os.path.join(self.path, "checkpoints")
        self.model = os.path.join(self.path, "model.keras")
        self.export = os.path.join(self.path, "export")
        self.config_file = os.path.join(self.path, "config.json")
        self.metrics_file = os.path.join(self.path, "metrics.json")

    def file(self, *parts):
        """`path/parts...`, its folder created."""
        path = os.path.join(self.path, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def write_config(self, config):
        import keras
        import tensorflow as tf

        versions = {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__}
        self._write_json(self.config_file, {**config, "versions": versions})

    def read_config(self):
        if not os.path.isfile(self.config_file):
            raise FileNotFoundError(
                f"'{self.path}' is not a run folder (no config.json); pass the folder `tfxfer fit` wrote."
            )
        with open(self.config_file) as file:
            return json.load(file)

    def tensorboard(self, stage):
        """A TensorBoard callback logging `stage` under `logs/`."""
        import keras

        return keras.callbacks.TensorBoard(os.path.join(self.path, "logs", stage))

    def write_metrics(self, histories, results):
        """`metrics.csv` (per epoch) and `metrics.json` (per stage + `results`)."""
        stages = {name: dict(h.history) for name, h in histories.items() if h is not None}
        names = sorted({metric for logs in stages.values() for metric in logs})
        rows = [
            {"stage": stage, "epoch": epoch + 1, **{m: logs[m][epoch] for m in names if m in logs}}
            for stage, logs in stages.items()
            for epoch in range(len(next(iter(logs.values()), [])))
        ]
        if is_chief():
            with open(self.file("metrics.csv"), "w", newline="") as file:
                writer = csv.DictWriter(file, ["stage", "epoch", *names])
                writer.writeheader()
                writer.writerows(rows)
        self._write_json(self.metrics_file, {"results": results, "history": stages})

    def write_plots(self, histories, labels, predictions, class_names, title):
        """`plots/curves.png` and `plots/confusion.png`; their paths."""
        if not is_chief():
            return []
        curves = (
            plots.training_curves(histories, self.file("plots", "curves.png"))
            if any(h is not None for h in histories.values())
            else None
        )
        confusion = plots.confusion_matrix(
            labels, predictions, class_names, self.file("plots", "confusion.png"), title=title
        )
        return [path for path in (curves, confusion) if path]

    def _write_json(self, path, content):
        if is_chief():
            os.makedirs(self.path, exist_ok=True)
            with open(path, "w") as file:
                json.dump(content, file, indent=2, default=float)
