"""Staged fine-tuning: warm the head up, then unfreeze the top of the source.

The fastai recipe for Keras 3: `fine_tune(model, x, y, epochs=...)` trains
the new head with the source frozen, then unfreezes the top `unfreeze`
block groups and trains them with smaller, per-group learning rates (the
update is scaled, which is right for Adam), BatchNorm kept in inference mode
unless asked otherwise, under a warm-up + cosine schedule. With a
`checkpoint_dir`, an interrupted run resumes where it stopped when called
again with the same arguments.
"""

import collections
import logging
import math
import os
import shutil

import keras
import numpy as np
import scipy.sparse
import tensorflow as tf

from tfxfer._compat import GuardedBackup
from tfxfer.distribute import is_chief
from tfxfer.run_folder import write_atomically
from tfxfer.sources.hub import HubFeatures
from tfxfer.sources.text_encoding import as_model_inputs
from tfxfer.transfer.budget import (
    balanced_tasks,
    least_steps,
    noise_margin,
    repeat_small_data,
    stage_plan,
    steps_per_epoch,
)
from tfxfer.transfer.consistency import FixMatchTrainer, fixmatch_dataset
from tfxfer.transfer.optimizers import OPTIMIZERS, warmup_cosine
from tfxfer.walk import walk_layers

_log = logging.getLogger("tfxfer")

BN_POLICIES = ("frozen", "train")


def block_groups(source):
    """The source's named groups of layers, bottom to top."""
    if hasattr(source, "block_groups"):  # ImageBackbone
        return source.block_groups
    if isinstance(source, keras.Model):
        return collections.OrderedDict((layer.name, [layer]) for layer in source.layers if layer.weights)
    return collections.OrderedDict([(source.name, [source])])  # HubFeatures: one opaque group


def set_batchnorm(source, bn):
    """`"frozen"`: BatchNorm runs in inference mode and keeps its statistics.

    Keras BatchNormalization layers are made non-trainable (their Keras
    meaning: inference mode, statistics and scale/offset fixed); HubFeatures
    modules are called with `training=False`. `"train"`: BatchNorm follows
    the trainability of its group and updates its statistics.
    """
    if bn not in BN_POLICIES:
        raise ValueError(f"bn must be one of {BN_POLICIES}. Received: bn={bn!r}")
    for layer in walk_layers(source):
        if isinstance(layer, HubFeatures):
            layer.bn = bn
        elif isinstance(layer, keras.layers.BatchNormalization) and bn == "frozen":
            layer.trainable = False


def unfreeze_top(source, num_groups, bn="frozen"):
    """Makes only the top `num_groups` groups of `source` trainable.

    Args:
        source: the pretrained source (ImageBackbone, HubFeatures, a Keras model).
        num_groups: how many groups, counted from the top; `"all"` for all,
            0 to freeze the source. More than the source has means all
            (with a one-line notice).
        bn: the BatchNorm policy, see `set_batchnorm`.

    Returns:
        The names of the trainable groups, bottom to top.
    """
    groups = block_groups(source)
    names = list(groups)
    count = len(names) if num_groups == "all" else num_groups
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(
            f"num_groups must be 'all' or an integer from 0 (the groups are {names}). "
            f"Received: num_groups={num_groups!r}"
        )
    if count > len(names):
        _log.warning(
            f"unfreeze={count}: the source has {len(names)} block group(s) ({', '.join(names)}); "
            f"unfreezing all {len(names)}."
        )
        count = len(names)
    top = names[len(names) - count :]
    # Every container on, each layer explicitly: a frozen container would hide
    # its layers' weights, and Keras skips assigning a flag it already holds.
    for layer in walk_layers(source):
        layer.trainable = True
    for name, layers in groups.items():
        for layer in layers:
            layer.trainable = name in top
    if not top:
        source.trainable = False
    set_batchnorm(source, bn)
    return top


def group_rate_multipliers(source, groups, source_rate=0.1, group_decay=1.0):
    """`{variable path: multiplier}` for the trainable variables of `groups`.

    The top group gets `source_rate`; each group below gets `group_decay`
    times the one above (discriminative rates). Variables not listed (the
    head) keep the base rate.
    """
    all_groups = block_groups(source)
    multipliers = {}
    for depth, name in enumerate(reversed(groups)):
        factor = source_rate * group_decay**depth
        for layer in all_groups[name]:
            for variable in layer.trainable_weights:
                multipliers[variable.path] = factor
    return multipliers


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
            _log.warning(
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
                _log.warning(
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


def source_outputs(source, batch):
    """The source's outputs for one batch, in inference mode, as an array
    (a `scipy.sparse.csr_matrix` for a source with sparse outputs)."""
    if isinstance(source, keras.Model):  # Keras' compiled predict function: graph speed
        outputs = source.predict_on_batch(batch)
    else:
        outputs = source(batch, training=False)  # a bare layer (e.g. HubFeatures): its own graph
    if isinstance(outputs, tf.SparseTensor):
        indices = outputs.indices.numpy()
        return scipy.sparse.csr_matrix(
            (outputs.values.numpy(), (indices[:, 0], indices[:, 1])), shape=tuple(outputs.dense_shape.numpy())
        )
    return np.asarray(outputs)


def _adapt_scaling(model, x, limit=2048, batch_size=64):
    """Adapts the head's feature scaling (once) on the source's features of
    up to `limit` training inputs: arrays are sliced, datasets read batch by
    batch."""
    if not hasattr(model, "adapt_feature_scaling") or getattr(model, "feature_scaling", None) is None:
        return
    if model.feature_scaling_adapted:
        return
    if isinstance(x, tf.data.Dataset):  # batched of inputs or (inputs, labels, ...)
        batches = [batch[0] if isinstance(batch, tuple) else batch for batch in x.take(max(limit // 32, 1))]
        sample = np.concatenate([np.asarray(b) for b in batches])[:limit]
    else:
        sample = as_model_inputs(x)[:limit]
    batches = range(0, len(sample), batch_size)
    model.adapt_feature_scaling(
        np.concatenate([source_outputs(model.backbone, sample[i : i + batch_size]) for i in batches])
    )


def _resolved_rates(model, learning_rate, source_rate):
    default_rate, default_source = model.fine_tuning_rates() if hasattr(model, "fine_tuning_rates") else (1e-3, 0.1)
    return (
        default_rate if learning_rate == "auto" else learning_rate,
        default_source if source_rate == "auto" else source_rate,
    )


def kept_compile_arguments(model):
    """The loss, metrics and other `compile` arguments of a compiled model
    (all but the optimizer), so that a stage that needs its own optimizer
    keeps the rest; `{}` for a model never compiled (its defaults apply)."""
    if not getattr(model, "compiled", False):
        return {}
    arguments = keras.saving.deserialize_keras_object(model.get_compile_config())
    arguments.pop("optimizer", None)
    return {key: value for key, value in arguments.items() if value is not None}


def fine_tune(
    model,
    x,
    y=None,
    *,
    epochs="auto",
    warmup_epochs="auto",
    unfreeze="all",
    learning_rate="auto",
    source_rate="auto",
    group_decay=1.0,
    bn="frozen",
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
    unlabelled=None,
    threshold=0.95,
    unlabelled_ratio=7,
    **fit_kwargs,
):
    """Head warm-up with the source frozen, then staged fine-tuning.

    Args:
        model: a task model with `.backbone` (e.g. `ImageClassifier`).
        x, y: training data, as for `keras.Model.fit`.
        epochs: epochs of the fine-tuning stage; `"auto"` sizes it to the
            data (at least `min_steps` optimizer steps, at least 5 epochs;
            see `tfxfer.transfer.budget`).
        warmup_epochs: epochs of the head warm-up, `"auto"` (at least
            `min_steps` steps, at least 2 epochs) or 0 to skip it.
        unfreeze: how many of the source's top block groups to train,
            or `"all"`; more than the source has means all.
        learning_rate: peak rate of the head; warm-up + cosine schedule.
            `"auto"`: the model's `fine_tuning_rates()` (1e-3; 1e-2 for
            a `TextClassifier` on word vectors).
        source_rate: multiplier of the top unfrozen group's rate; `"auto"`:
            the model's (0.1; 1.0 for word vectors).
        group_decay: each lower group's multiplier is this times the one above.
        bn: `"frozen"` (default) or `"train"`, see `set_batchnorm`.
        optimizer: `"adam"`, `"adamw"` or `"sgd"`.
        weight_decay: decoupled weight decay, scaled per group like the rate.
        warmup_fraction: share of each stage's steps spent warming the rate up.
        validation_data: as for `fit`; early stopping watches `val_loss` then.
        patience: epochs without a better `val_loss` before a stage stops
            (best weights kept); `"auto"`: with validation data and `"auto"`
            epochs, 2; None: off.
        min_steps: the least optimizer steps of an `"auto"` stage (300; per
            task of a `MultiTaskClassifier`, whose tasks are also balanced).
        checkpoint_dir: folder for per-epoch backups; rerunning with the same
            folder resumes an interrupted run without losing a finished epoch.
            With several workers, only the chief writes it and all read it.
        batch_size, callbacks, verbose, **fit_kwargs: passed to `fit`.
        unlabelled: images without labels (arrays, as `x`): both stages then
            train by FixMatch (`tfxfer.transfer.consistency`): each step
            adds `unlabelled_ratio` times as many unlabelled images, whose
            weakly augmented view, where predicted with at least `threshold`
            confidence, labels a strongly augmented view; the labelled images
            are weakly augmented too. An epoch is one pass over them.

    Each stage compiles its own optimizer (per-group rates need one); a
    compiled model keeps its loss and metrics, an uncompiled one gets the
    task's defaults. With `verbose`, each stage says what it runs.

    Returns:
        `{"warmup": History or None, "fine_tune": History or None}`; a stage
        finished in an earlier run is skipped (None).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}. Received: optimizer={optimizer!r}")
    if hasattr(model, "check_labels"):
        model.check_labels(y)
    x, y = balanced_tasks(model, x, y, fit_kwargs)
    passes = 1
    if epochs == "auto" and warmup_epochs in ("auto", 0) and unlabelled is None:
        x, y, passes = repeat_small_data(x, y, fit_kwargs, batch_size)
    learning_rate, source_rate = _resolved_rates(model, learning_rate, source_rate)
    source = model.backbone
    trainer, labelled_x = model, x
    if unlabelled is not None:  # FixMatch: the trainer shares the model's weights
        if hasattr(model, "check_images"):
            model.check_images(np.asarray(unlabelled))
        dataset, steps = fixmatch_dataset(x, y, unlabelled, batch_size or 32, unlabelled_ratio)
        trainer = FixMatchTrainer(model, threshold=threshold)
        x, y, batch_size = dataset, None, None
        fit_kwargs["steps_per_epoch"] = steps
    steps = steps_per_epoch(x, batch_size, fit_kwargs.get("steps_per_epoch"))
    if isinstance(x, tf.data.Dataset):  # shuffled by its maker; Keras warns on shuffle=True
        fit_kwargs.setdefault("shuffle", False)
    fit_kwargs = dict(y=y, batch_size=batch_size, validation_data=validation_data, verbose=verbose, **fit_kwargs)
    kept = kept_compile_arguments(model)

    def plan(stage, stage_epochs):
        return stage_plan(
            stage,
            steps,
            stage_epochs,
            validation=validation_data is not None,
            min_steps=least_steps(model, min_steps),
            patience=patience,
            passes=passes,
        )

    def run(stage, stage_plan_, multipliers):
        optimizer_class = OPTIMIZERS[optimizer]
        extra = {"weight_decay": weight_decay} if weight_decay else {}
        with model.distribute_strategy.scope():  # the optimizer's state lives where the weights do
            model.compile(
                optimizer=optimizer_class(
                    warmup_cosine(learning_rate, stage_plan_.epochs * steps, warmup_fraction),
                    rate_multipliers=multipliers,
                    **extra,
                ),
                **kept,
            )
            if trainer is not model:  # the task's loss and metrics, its optimizer
                trainer.compile(optimizer=model.optimizer, **kept_compile_arguments(model))
        if verbose:
            what = "the model's own loss and metrics" if kept else "the task's default loss and metrics"
            print(
                f"fine_tune, {stage_plan_.describe()}; {optimizer_class.__name__} at {learning_rate:g} "
                f"(warm-up + cosine; the source at {source_rate:g}x), {what}"
            )
        guard = _StopOnNaN(stage.name, checkpoint_dir)
        start = _ValidationScore(model, validation_data, batch_size)
        history = trainer.fit(
            x,
            epochs=stage_plan_.epochs,
            callbacks=[*stage.callbacks(), *stage_plan_.callbacks, guard, *callbacks],
            **fit_kwargs,
        )
        start.keep_if_better(stage.name)
        stage.finish(model)
        return history

    histories = {"warmup": None, "fine_tune": None}
    _adapt_scaling(model, labelled_x)
    warmup = _Stage("warmup", checkpoint_dir)
    if warmup_epochs and not warmup.done(model):
        unfreeze_top(source, 0, bn)
        histories["warmup"] = run(warmup, plan("warmup", warmup_epochs), {})
    tuning = _Stage("fine_tune", checkpoint_dir)
    groups = unfreeze_top(source, unfreeze, bn)
    if epochs and not tuning.done(model):
        multipliers = group_rate_multipliers(source, groups, source_rate, group_decay)
        histories["fine_tune"] = run(tuning, plan("fine_tune", epochs), multipliers)
    return histories
