"""How long a training stage runs, sized to the data.

An epoch count that is right for 50,000 images trains nothing on 200, so a
stage asked to run `epochs="auto"` counts optimizer steps: it runs at least
`min_steps` (and at least `default_epochs` epochs), and, with validation
data, stops once the validation loss has not improved for `patience`
epochs, keeping the best weights. `fit_head`, `fine_tune`, the CLI, the
recipes and the demo all size their stages here; a multi-task model's tasks
are balanced first (`balanced_tasks`).

>>> plan = stage_plan("head", steps_per_epoch=7, epochs="auto")
>>> plan.epochs, plan.epochs * 7 >= MIN_STEPS
(43, True)
>>> stage_plan("head", steps_per_epoch=500, epochs="auto").epochs
10
"""

import dataclasses
import math

import keras
import numpy as np

from tfxfer.transfer.contract import contract

MIN_STEPS = 300  # optimizer steps a stage runs at the least, however small the data
# An "auto" epoch has at least this many steps: few examples are repeated
# within an epoch, so the work done once an epoch (validation, backups) stays
# a small share; 300 one-step epochs spent 90 % of their time on it.
MIN_EPOCH_STEPS = 20
DEFAULT_EPOCHS = {"head": 10, "warmup": 2, "fine_tune": 5}
PATIENCE = {"head": 5, "warmup": 2, "fine_tune": 2}


@dataclasses.dataclass
class StagePlan:
    """What a stage will run: `epochs`, and the early-stopping callbacks."""

    stage: str
    epochs: int
    steps_per_epoch: int
    callbacks: list
    reason: str

    def describe(self):
        return f"{self.stage} stage: {self.epochs} epochs of {self.steps_per_epoch} steps ({self.reason})"


def stage_plan(stage, steps_per_epoch, epochs="auto", validation=False, min_steps=MIN_STEPS, patience="auto", passes=1):
    """The epochs and callbacks of one stage.

    Args:
        stage: `"head"`, `"warmup"` or `"fine_tune"` (their defaults differ).
        steps_per_epoch: optimizer steps in one epoch.
        epochs: `"auto"`, or a number of epochs to run as asked.
        validation: whether validation data is given (early stopping then,
            from the epoch where `min_steps` are done).
        min_steps: the least number of optimizer steps for `"auto"`.
        patience: epochs without a better validation loss before stopping;
            `"auto"` per stage, None for no early stopping.
        passes: passes over the data in one epoch (`repeat_small_data`); the
            default epochs count passes.
    """
    steps_per_epoch = max(int(steps_per_epoch), 1)
    if patience == "auto":
        patience = PATIENCE.get(stage, PATIENCE["fine_tune"]) if validation and epochs == "auto" else None
    needed = math.ceil(min_steps / steps_per_epoch)
    if epochs == "auto":
        stage_default = DEFAULT_EPOCHS.get(stage, DEFAULT_EPOCHS["fine_tune"])  # a stage of your own: as fine-tuning
        default = math.ceil(stage_default / passes)
        epochs = max(default, needed)
        reason = (
            f"at least {min_steps} steps for {steps_per_epoch}-step epochs"
            if needed > default
            else f"default {stage_default} epochs, over {min_steps} steps"
        )
        if passes > 1:
            reason += f"; the few examples repeated {passes} times an epoch"
    else:
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be 'auto' or a non-negative integer. Received: epochs={epochs!r}")
        reason = "as asked"
    callbacks = []
    if patience and validation:
        # Not before the minimum steps: a small validation split is noisy, and
        # the rate is still warming up in the first epochs.
        start = min(needed, epochs)
        callbacks.append(
            keras.callbacks.EarlyStopping(
                "val_loss", patience=patience, restore_best_weights=True, start_from_epoch=start
            )
        )
        reason += f"; after {start * steps_per_epoch} steps, stops once val_loss has not improved for {patience} epochs"
        reason += ", best weights kept"
    return StagePlan(stage, epochs, steps_per_epoch, callbacks, reason)


def noise_margin(count):
    """How far a validation accuracy on `count` examples may fall below
    another before the difference counts: 1/sqrt(count), about two standard
    errors of an accuracy near 50 % (0.2 on 25 examples, 0.025 on 1,600)."""
    return 1.0 / math.sqrt(max(count, 1))


def steps_per_epoch(x, batch_size, steps=None):
    """Optimizer steps in one epoch over `x` (arrays, or a batched dataset)."""
    if steps:
        return int(steps)
    if not hasattr(x, "cardinality"):  # arrays (a Dataset's len() counts batches, not examples)
        return max(-(-len(x) // (batch_size or 32)), 1)
    cardinality = int(x.cardinality())
    if cardinality < 1:
        raise ValueError(
            "The dataset's length is unknown (or infinite), so the schedule "
            "cannot be laid out; pass steps_per_epoch=... to fine_tune."
        )
    return cardinality


def balanced_tasks(model, x, y, sample_weight=None):
    """`x, y, sample_weight` resampled so that each task has as many
    labelled rows, for a multi-task model trained on arrays (dict labels);
    anything else is returned as it is."""
    if not isinstance(y, dict) or not hasattr(x, "__len__"):
        return x, y, sample_weight
    return contract(model).balance_tasks(x if hasattr(x, "shape") else np.asarray(x), y, sample_weight)


def least_steps(model, min_steps=None):
    """The least optimizer steps of an `"auto"` stage: `min_steps` (default
    `MIN_STEPS`) per task, so each task of a multi-task model gets the steps
    it would get alone (on digits, half of them cost 4 points of accuracy
    on the task with few labels, benchmarks/multi_task.py)."""
    return (min_steps or MIN_STEPS) * contract(model).task_count


def repeat_small_data(x, y, sample_weight, batch_size):
    """Arrays with fewer than `MIN_EPOCH_STEPS` batches, repeated so that
    one epoch has about that many; `sample_weight` follows. Returns
    `(x, y, sample_weight, passes)`: `passes` copies in an epoch (1:
    unchanged). Datasets and streams are returned as they are."""
    if y is None or not (hasattr(x, "shape") or hasattr(x, "__len__")) or hasattr(x, "cardinality"):
        return x, y, sample_weight, 1
    count = x.shape[0] if hasattr(x, "shape") else len(x)  # a sparse matrix has no len()
    steps = -(-count // (batch_size or 32))
    if not steps or steps >= MIN_EPOCH_STEPS:
        return x, y, sample_weight, 1
    passes = math.ceil(MIN_EPOCH_STEPS / steps)
    rows = np.tile(np.arange(count), passes)
    x = (x if hasattr(x, "shape") else np.asarray(x))[rows]
    y = {name: np.asarray(v)[rows] for name, v in y.items()} if isinstance(y, dict) else np.asarray(y)[rows]
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight)[rows]
    return x, y, sample_weight, passes
