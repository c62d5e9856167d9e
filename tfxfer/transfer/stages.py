"""One training stage: the step that `fine_tune` (and any schedule of your
own) is made of.

`fit_stage` runs one `fit` of the model's trainable weights with a fresh
optimizer under a warm-up + cosine schedule, per-variable rate multipliers
(discriminative rates), early stopping on validation, a backup every epoch
that a rerun resumes from, an error at the first NaN loss, and a check that
gives the start back when the stage ends below it on validation.
"""

import math
import os
import shutil

import keras
import tensorflow as tf

from tfxfer._compat import GuardedBackup
from tfxfer.distribute import is_chief
from tfxfer.files import write_atomically
from tfxfer.log import logger, say
from tfxfer.transfer.budget import (
    balanced_tasks,
    least_steps,
    noise_margin,
    repeat_small_data,
    stage_plan,
    steps_per_epoch,
)
from tfxfer.transfer.contract import contract
from tfxfer.transfer.feature_cache import adapt_scaling_on_inputs
from tfxfer.transfer.optimizers import OPTIMIZERS, warmup_cosine
from tfxfer.validation import check_choice, check_consistent_length


def fit_stage(
    model,
    x,
    y=None,
    *,
    name="fine_tune",
    epochs="auto",
    learning_rate="auto",
    rate_multipliers=None,
    optimizer="adam",
    weight_decay=None,
    warmup_fraction=0.1,
    validation_data=None,
    patience="auto",
    min_steps=None,
    checkpoint_dir=None,
    batch_size=None,
    callbacks=(),
    verbose="auto",
    trainer=None,
    **fit_kwargs,
):
    """Trains `model`'s trainable weights for one stage.

    Args:
        model: a task model (`contract`: a `.backbone` and a head).
        x, y: training data, as for `keras.Model.fit`.
        name: its folder under `checkpoint_dir`; `"warmup"` or `"fine_tune"`
            also picks the default epochs and patience (`budget`).
        epochs: `"auto"` (at least `min_steps` optimizer steps; few examples
            are repeated within an epoch), or a number of epochs.
        learning_rate: peak rate (warm-up over `warmup_fraction` of the
            steps, then cosine); `"auto"`: the model's `fine_tuning_rates()`.
        rate_multipliers: `{variable path prefix: factor}` scaling the update
            of those variables (`group_rate_multipliers`).
        optimizer: `"adam"`, `"adamw"` or `"sgd"` (`weight_decay` decoupled).
        validation_data: early stopping watches `val_loss` (best weights
            kept; `patience` epochs); a stage that ends below its start on
            validation beyond the noise gives the start back.
        checkpoint_dir: a backup each epoch under `checkpoint_dir/name`, written
            by the chief; a rerun resumes it, or skips a finished stage.
        trainer: a model sharing `model`'s weights whose `fit` runs instead
            (e.g. `FixMatchTrainer`).
        batch_size, callbacks, verbose, **fit_kwargs: passed to `fit`.

    Returns the stage's `History` (None for a stage an earlier run
    finished). The model keeps its loss and metrics; the optimizer is new.
    """
    check_choice("optimizer", optimizer, sorted(OPTIMIZERS))
    task = contract(model)
    stage = _Stage(name, checkpoint_dir)
    if stage.done(model):
        return None
    repeat = epochs == "auto" and trainer is None
    x, y, sample_weight, passes = _stage_inputs(
        task, x, y, fit_kwargs.pop("sample_weight", None), batch_size, repeat, adapt=trainer is None
    )
    steps = steps_per_epoch(x, batch_size, fit_kwargs.get("steps_per_epoch"))
    plan = stage_plan(
        name, steps, epochs, validation=validation_data is not None, min_steps=least_steps(task, min_steps),
        patience=patience, passes=passes,
    )  # fmt: skip
    rate = task.fine_tuning_rates()[0] if learning_rate == "auto" else learning_rate
    what = "the model's own loss and metrics" if task.compiled_by_user else "the task's default loss and metrics"
    optimizer_class = OPTIMIZERS[optimizer]
    extra = {"weight_decay": weight_decay} if weight_decay else {}
    schedule = warmup_cosine(rate, plan.epochs * steps, warmup_fraction)
    _compile_stage(task, trainer, lambda: optimizer_class(schedule, rate_multipliers=rate_multipliers or {}, **extra))
    say(verbose, f"fit_stage, {plan.describe()}; {optimizer_class.__name__} at {rate:g} (warm-up + cosine), {what}")
    if isinstance(x, tf.data.Dataset):  # shuffled by its maker; Keras warns on shuffle=True
        fit_kwargs.setdefault("shuffle", False)
    start = _ValidationScore(model, validation_data, batch_size)
    history = (trainer or model).fit(
        x, y, batch_size=batch_size, epochs=plan.epochs, validation_data=validation_data, verbose=verbose,
        sample_weight=sample_weight, callbacks=[*stage.callbacks(), *plan.callbacks, _StopOnNaN(name, checkpoint_dir),
        *callbacks], **fit_kwargs,
    )  # fmt: skip
    start.keep_if_better(name)
    stage.finish(model)
    return history


def _stage_inputs(task, x, y, sample_weight, batch_size, repeat, adapt=True):
    """Inputs and labels checked, tasks balanced, few examples repeated
    (`repeat`), the feature scaling adapted (`adapt`: not for a trainer's
    data, which is not the task's inputs; its caller adapts it, or the head
    does later)."""
    if y is not None and not isinstance(y, dict) and hasattr(x, "__len__"):
        check_consistent_length(x=x, y=y)
    task.check_labels(y)
    x, y, sample_weight = balanced_tasks(task, x, y, sample_weight)
    passes = 1
    if repeat:
        x, y, sample_weight, passes = repeat_small_data(x, y, sample_weight, batch_size)
    if adapt:
        adapt_scaling_on_inputs(task, x)
    return x, y, sample_weight, passes


def _compile_stage(task, trainer, make_optimizer):
    """A fresh optimizer for the stage; the model's loss and metrics kept,
    and the `trainer` (if any) compiled with the same optimizer."""
    kept = task.kept_compile_arguments()
    with task.distribute_strategy.scope():  # the optimizer's state lives where the weights do
        task.compile(optimizer=make_optimizer(), **kept)
        if trainer is not None:
            trainer.compile(optimizer=task.optimizer, **kept)


class _StopOnNaN(keras.callbacks.Callback):
    """Stops at the first NaN or infinite loss with an error (not a silent
    stop): raising skips `BackupAndRestore`'s end-of-training cleanup, so
    the last finished epoch stays in the checkpoint folder."""

    def __init__(self, stage, checkpoint_dir):
        super().__init__()
        self.stage, self.checkpoint_dir = stage, checkpoint_dir

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            kept = (
                f"the last finished epoch is kept in '{self.checkpoint_dir}': lower learning_rate "
                "and call fine_tune again to resume from it"
                if self.checkpoint_dir
                else "the weights are now unusable; pass checkpoint_dir= to keep the last finished epoch"
            )
            raise FloatingPointError(
                f"The loss became {loss} in the {self.stage} stage, epoch {self.epoch + 1}, batch {batch + 1}; "
                f"{kept}. Common causes: a learning rate too high for the source, or NaN in the inputs."
            )


class _ChiefBackup(GuardedBackup):
    """`BackupAndRestore` for one or many workers: every worker restores from
    the folder, only the chief writes or removes it (Keras' own callback
    would have all workers write the same files). The previous backup is
    kept too, so a process killed while writing loses one epoch at most.
    The backup outlives the training: `_Stage.finish` removes it once the
    stage's end is recorded, so no kill in between loses the stage."""

    def __init__(self, backup_dir):
        super().__init__(backup_dir, double_checkpoint=True, delete_checkpoint=False)

    def should_write(self):
        return is_chief(self.model.distribute_strategy)


class _ValidationScore:
    """The validation accuracy (or loss) of the weights a stage starts from,
    so that a stage that ends below it, beyond the noise of an accuracy on
    that many examples (`noise_margin`), gives them back: fine-tuning never
    leaves a model worse on validation than the head it started from. The
    margin matters on small splits: on CIFAR-10 at 25 labels per class, of
    two runs of one command (CPU kernels are not deterministic) one ended 4
    of 25 validation images lower and gave back a fine-tuning that the
    other kept: 65.2 % on test, the head alone 52.7 %."""

    def __init__(self, model, validation_data, batch_size):
        self.model, self.validation_data, self.batch_size = model, validation_data, batch_size
        self.score = self._measure() if validation_data is not None else None
        self.weights = model.get_weights() if self.score is not None else None
        self.margin = 0.0
        if isinstance(validation_data, tuple | list) and self.uses_accuracy:
            self.margin = noise_margin(len(validation_data[1]))

    def _measure(self):
        data, evaluate = self.validation_data, self.model.evaluate
        if isinstance(data, tuple | list):  # (x, y) or (x, y, sample_weight)
            weights = data[2] if len(data) > 2 else None
            scores = evaluate(
                data[0], data[1], batch_size=self.batch_size, verbose=0, sample_weight=weights, return_dict=True
            )
        else:  # a dataset
            scores = evaluate(data, verbose=0, return_dict=True)
        self.uses_accuracy = "accuracy" in scores
        return scores["accuracy"] if self.uses_accuracy else -scores["loss"]

    def keep_if_better(self, stage):
        if self.score is None:
            return
        end = self._measure()
        if end < self.score - self.margin:
            self.model.set_weights(self.weights)
            logger.warning(
                f"fine_tune: the {stage} stage ended below its start on validation ({end:.4f} < "
                f"{self.score:.4f}, beyond the noise margin {self.margin:.4f}); the weights it started from are kept."
            )


class _Stage:
    """One `fit` call whose end is recorded, so a rerun skips or resumes it."""

    def __init__(self, name, checkpoint_dir):
        self.name = name
        self.folder = checkpoint_dir and os.path.join(checkpoint_dir, name)
        self.done_file = self.folder and os.path.join(self.folder, "done.weights.h5")

        self.backup = self.folder and os.path.join(self.folder, "backup")

    def done(self, model):
        if self.folder and os.path.exists(self.done_file):
            try:
                model.load_weights(self.done_file)
            except (OSError, ValueError) as error:  # damaged after the fact: the stage runs again
                logger.warning(
                    f"'{self.done_file}' is unreadable ({type(error).__name__}); the {self.name} stage runs again."
                )
                os.remove(self.done_file)
                return False
            self._remove_backup(model)  # left by a kill after the end was recorded
            return True
        return False

    def callbacks(self):
        return [_ChiefBackup(self.backup)] if self.folder else []

    def finish(self, model):
        """Records the stage's end (written whole, then renamed), and only
        then removes its backup."""
        if self.folder and is_chief(model.distribute_strategy):
            os.makedirs(self.folder, exist_ok=True)
            write_atomically(self.done_file, model.save_weights)
            self._remove_backup(model)

    def _remove_backup(self, model):
        if is_chief(model.distribute_strategy) and os.path.isdir(self.backup):
            shutil.rmtree(self.backup)
