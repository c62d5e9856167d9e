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
        .run.lock          held while a process trains here (its pid inside)

A folder has an identity: `config.json` holds the settings that decide the
result, and a rerun with other settings is refused (`start`), naming them,
unless asked to start over, which removes only the files tfxfer writes.
Every file is written under a temporary name and renamed, so a kill leaves
the old file or the new one, never half of one.

Only the chief writes in a multi-worker cluster (`tfxfer.distribute.is_chief`).
"""

import contextlib
import csv
import fnmatch
import json
import os
import platform
import shutil

from tfxfer.distribute import is_chief
from tfxfer.files import write_atomically, write_json
from tfxfer.fit_config import FitConfig

# What tfxfer writes in a run folder, as patterns of paths relative to it
# (`fnmatch`: `*` spans folders too): all that `start(overwrite=True)`
# removes. A user's own files, in any subfolder, stay.
OWN_FILES = (
    "config.json",
    "metrics.csv",
    "metrics.json",
    "evaluation.json",
    "model.keras",
    "export.manifest.json",  # the export's own files are listed in it
    "representative.json",
    "plots/curves.png",
    "plots/confusion.png",
    "plots/evaluation_confusion.png",
    "logs/*/events.out.tfevents.*",  # TensorBoard's, per stage (and its train/, validation/)
    "checkpoints/*/done.weights.h5",  # a stage's end marker
    "checkpoints/*/backup/*",  # Keras' backups of a stage, under the folder tfxfer names
)
OWN_FOLDERS = ("plots", "logs", "checkpoints", "export")  # removed once emptied of tfxfer's files
# Settings that do not change the result: a rerun may differ in them.
NOT_IDENTITY = FitConfig.not_identity()


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (other settings, in use)."""


class RunFolder:
    """Paths and writers of one run's folder (created on first write)."""

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        self.checkpoints = os.path.join(self.path, "checkpoints")
        self.model = os.path.join(self.path, "model.keras")
        self.export = os.path.join(self.path, "export")
        self.config_file = os.path.join(self.path, "config.json")
        self.metrics_file = os.path.join(self.path, "metrics.json")
        self._manifest_file = os.path.join(self.path, "export.manifest.json")

    def start(self, config, overwrite=False):
        """Checks that this folder is free for a run of `config`: a folder
        holding a run with other settings is refused, naming them, unless
        `overwrite`, which removes tfxfer's own files first (never others).
        Then removes what a killed run left half-written and writes `config`."""
        if os.path.isfile(self.config_file):
            try:
                previous = self.read_config()
            except RunFolderError:
                if not overwrite:
                    raise
                previous = {}  # unreadable: whatever ran here is started over
            differing = sorted(
                key for key in {*previous, *config} - set(NOT_IDENTITY) if previous.get(key) != config.get(key)
            )
            if differing and not overwrite:
                changes = "; ".join(f"{key}: {previous.get(key)!r} then, {config.get(key)!r} now" for key in differing)
                raise RunFolderError(
                    f"'{self.path}' holds a run with other settings ({changes}). Rerunning resumes only the same "
                    "run: pass --overwrite to start over there, or choose another --run-dir."
                )
            if differing:
                self.remove_own_files()
        self.remove_partial_files()
        self.write_config(config)

    def remove_partial_files(self):
        """Removes the temporary files (`.partial-*`) a killed process left.
        Called under the lock, so no live process is writing them."""
        for folder, folders, files in os.walk(self.path):
            for name in [*files, *folders]:
                if name.startswith(".partial-"):
                    path = os.path.join(folder, name)
                    shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)

    def remove_own_files(self):
        """Removes what tfxfer writes here (`OWN_FILES`, and the files its
        last export wrote), nothing else; then its folders left empty."""
        exported = {os.path.join("export", name) for name in self._export_manifest()}
        for relative in _files_under(self.path):
            posix = relative.replace(os.sep, "/")
            if relative in exported or any(fnmatch.fnmatchcase(posix, pattern) for pattern in OWN_FILES):
                os.remove(os.path.join(self.path, relative))
        for name in OWN_FOLDERS:
            for folder, _, _ in sorted(os.walk(os.path.join(self.path, name)), reverse=True):  # deepest first
                with contextlib.suppress(OSError):  # not empty: a user's files are in it
                    os.rmdir(folder)

    @contextlib.contextmanager
    def lock(self):
        """Holds `.run.lock` (with this process's pid) while training: a
        second process on the folder is refused, naming the first's pid; a
        lock left by a process that no longer runs is taken over."""
        os.makedirs(self.path, exist_ok=True)
        path = os.path.join(self.path, ".run.lock")
        for _ in range(2):
            try:
                descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                break
            except FileExistsError:
                owner = _lock_owner(path)
                if owner is not None and _running(owner):
                    raise RunFolderError(
                        f"'{self.path}' is in use by process {owner} (its lock: {path}). Wait for it to finish, "
                        "or choose another --run-dir."
                    ) from None
                os.remove(path)  # left by a process that died
        else:
            raise RunFolderError(f"Could not take the lock {path}; remove it if no tfxfer process uses the folder.")
        with os.fdopen(descriptor, "w") as file:
            file.write(str(os.getpid()))
        try:
            yield self
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def foreign_export_files(self):
        """Files in `export/` that tfxfer's last export did not write."""
        if not os.path.isdir(self.export):
            return []
        own = set(self._export_manifest())
        return [path for path in _files_under(self.export) if path not in own]

    def check_export_free(self):
        """Refuses, before any training, an `export/` holding a user's files."""
        foreign = self.foreign_export_files()
        if foreign:
            raise RunFolderError(
                f"'{self.export}' holds files tfxfer did not write ({', '.join(foreign[:5])}); a run replaces "
                "that folder, so move them out first, or pass --no-export."
            )

    def replace_export(self, write):
        """`write(folder)` exports into a new folder, which then replaces the
        previous export (tfxfer's own files only, see `check_export_free`)."""
        staging = os.path.join(self.path, f".partial-{os.getpid()}-export")
        if os.path.exists(staging):
            shutil.rmtree(staging)
        try:
            write(staging)
            self.check_export_free()
            # Until the swap is done the manifest owns the old files and the
            # new ones, so a kill in between leaves nothing that looks foreign.
            exported = _files_under(staging)
            self._write_json(self._manifest_file, sorted({*self._export_manifest(), *exported}))
            if os.path.isdir(self.export):
                shutil.rmtree(self.export)
            os.replace(staging, self.export)
        finally:
            if os.path.exists(staging):
                shutil.rmtree(staging)
        self._write_json(self._manifest_file, exported)

    def _export_manifest(self):
        try:
            with open(self._manifest_file) as file:
                return json.load(file)
        except (OSError, ValueError):
            return []

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
            try:
                config = json.load(file)
                problem = None if isinstance(config, dict) else "not a JSON object"
            except ValueError as error:
                problem = f"not JSON: {error}"
        if problem:
            raise RunFolderError(
                f"'{self.config_file}' is damaged ({problem}), so the run there cannot be resumed or compared: "
                "pass --overwrite to start over in that folder, or choose another --run-dir."
            )
        return config

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

        def write_csv(path):
            with open(path, "w", newline="") as file:
                writer = csv.DictWriter(file, ["stage", "epoch", *names])
                writer.writeheader()
                writer.writerows(rows)

        if is_chief():
            write_atomically(self.file("metrics.csv"), write_csv)
        self._write_json(self.metrics_file, {"results": results, "history": stages})

    def write_plots(self, histories, labels, predictions, class_names, title):
        """`plots/curves.png` and `plots/confusion.png` (single-label data); their paths."""
        from tfxfer import plots  # matplotlib: only when plots are drawn

        if not is_chief():
            return []
        curves = (
            plots.training_curves(histories, self.file("plots", "curves.png"))
            if any(h is not None for h in histories.values())
            else None
        )
        confusion = (
            plots.confusion_matrix(labels, predictions, class_names, self.file("plots", "confusion.png"), title=title)
            if len(getattr(labels, "shape", (0,))) == 1  # label sets (multi-label) have no confusion matrix
            else None
        )
        return [path for path in (curves, confusion) if path]

    def _write_json(self, path, content):
        if is_chief():
            os.makedirs(self.path, exist_ok=True)
            write_json(path, content)


def _files_under(root):
    """The paths of the files under `root`, relative to it, sorted."""
    return sorted(
        os.path.relpath(os.path.join(folder, name), root) for folder, _, names in os.walk(root) for name in names
    )


def _lock_owner(path):
    try:
        with open(path) as file:
            return int(file.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
