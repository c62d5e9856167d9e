"""The head of a task trained on the source's cached features.

The source is frozen, so its features are extracted once (`feature_cache`)
and only the head layers train on them, by gradient steps (Adam, sized by
`budget.stage_plan`) or, for a linear head, solved exactly (`solved_head`).
The head shares its weights with the task model, so the model itself ends
up trained.
"""

import keras
import numpy as np

from tfxfer.choices import SOLVERS
from tfxfer.log import say
from tfxfer.transfer.budget import balanced_tasks, least_steps, repeat_small_data, stage_plan
from tfxfer.transfer.contract import contract
from tfxfer.transfer.feature_cache import source_features
from tfxfer.transfer.optimizers import warmup_cosine
from tfxfer.transfer.solved_head import fit_linear_head, fit_multi_label_head, linear_head
from tfxfer.validation import check_choice


def fit_head(model, x, y, *, batch_size=32, validation_data=None, cache_dir=None, progress=True, **settings):
    """Trains the head of a task model on cached source features.

    The source (`model.backbone`) is frozen; its features are extracted once
    (or read from the cache) and the model's own head layers are trained on
    them, so `model` itself ends up trained.

    Args:
        x, y: training inputs (images or texts) and labels.
        validation_data: `(x_val, y_val)`; early stopping watches it.
        cache_dir: the feature cache (`tfxfer.transfer.feature_cache`).
        progress: a progress bar while features are extracted.
        settings: how the head trains, see `fit_head_on_features`:
            `epochs` (`"auto"`: at least 300 optimizer steps and 10 epochs,
            early stopping with validation data), `learning_rate` (3e-3),
            `solver` (`"adam"`, or `"auto"`: a linear head solved exactly),
            `refit`, `min_steps`, `patience`, `verbose`, and `fit`'s own
            arguments (`callbacks`, `sample_weight`, ...).

    A compiled `model` trains with its own optimizer, loss and metrics;
    otherwise Adam at `learning_rate` with a 10% warm-up and cosine decay
    over the stage (a head on fixed features takes a higher rate than
    fine-tuning does), and the task's default loss and metrics.

    Returns:
        the `History` of the head's `fit`.
    """
    features = source_features(model, x, y, batch_size=batch_size, cache_dir=cache_dir, progress=progress)
    if validation_data is not None:
        val_x, val_y = validation_data
        val_features = source_features(
            model, val_x, val_y, batch_size=batch_size, cache_dir=cache_dir, progress=progress
        )
        validation_data = (val_features, val_y)
    return fit_head_on_features(model, features, y, batch_size=batch_size, validation_data=validation_data, **settings)


def fit_head_on_features(
    model,
    features,
    y,
    *,
    epochs="auto",
    batch_size=32,
    learning_rate=3e-3,
    validation_data=None,
    min_steps=None,
    patience="auto",
    verbose="auto",
    fresh_optimizer=False,
    solver="adam",
    seed=0,
    refit=False,
    svm_c="auto",
    **fit_kwargs,
):
    """`fit_head` on features already extracted (`source_features`), with
    validation features in `validation_data`.

    Args:
        epochs: `"auto"` sizes the stage to the data (`budget.stage_plan`),
            or a number of epochs to run as asked.
        learning_rate: peak rate of the default optimizer.
        min_steps, patience: see `tfxfer.transfer.budget.stage_plan`.
        fresh_optimizer: start a new default optimizer even if `model` is
            compiled (a new stage).
        solver: `"adam"`, or `"auto"`: a head that is linear on the features
            (scaling, dropout, one dense layer, the default loss) is solved
            exactly by `LinearSVC` (C and a temperature chosen on
            `validation_data`, which it needs; see `solved_head`). Any other
            head trains with Adam.
        refit: a solved head is fitted again on the training and validation
            examples once C and the temperature are chosen.
        svm_c: fixes the C of a solved head (`"auto"`: chosen, and reported
            in the history as `C`).
    """
    check_choice("solver", solver, SOLVERS)
    task = contract(model)
    dense = linear_head(task) if solver == "auto" and validation_data is not None else None
    if dense is not None:
        say(verbose, "fit_head: the linear head solved exactly (LinearSVC, scores calibrated on the validation data)")
        return _solve_head(task, dense, features, y, validation_data, seed, refit, svm_c, fit_kwargs)
    sample_weight = fit_kwargs.pop("sample_weight", None)
    features, y, sample_weight = balanced_tasks(task, features, y, sample_weight)
    passes = 1
    if epochs == "auto":
        features, y, sample_weight, passes = repeat_small_data(features, y, sample_weight, batch_size)
    steps = -(-features.shape[0] // batch_size)
    plan = stage_plan(
        "head", steps, epochs, validation=validation_data is not None, min_steps=least_steps(task, min_steps),
        patience=patience, passes=passes,
    )  # fmt: skip
    own_optimizer = task.compiled_by_user and not fresh_optimizer
    head = _compiled_head(task, features, None if own_optimizer else warmup_cosine(learning_rate, plan.epochs * steps))
    how = "the model's optimizer" if own_optimizer else f"Adam at {learning_rate:g} (warm-up + cosine)"
    say(verbose, f"fit_head, {plan.describe()}; {how}")
    callbacks = [*plan.callbacks, *fit_kwargs.pop("callbacks", [])]
    return head.fit(
        features, y, epochs=plan.epochs, batch_size=batch_size, validation_data=validation_data,
        callbacks=callbacks, verbose=verbose, sample_weight=sample_weight, **fit_kwargs,
    )  # fmt: skip


def _compiled_head(task, features, schedule):
    """The task's head on `features`, compiled with the task's optimizer, or
    a fresh Adam on `schedule`; the task's loss and metrics kept."""
    with task.distribute_strategy.scope():  # the head's weights and optimizer state live there
        head = task.head_on_features(features)
        if schedule is not None:
            task.compile(optimizer=keras.optimizers.Adam(schedule), **task.kept_compile_arguments())
        else:
            task.ensure_compiled()
        head.compile(optimizer=task.optimizer, **task.kept_compile_arguments())
    return head


def _solve_head(task, dense, features, y, validation_data, seed, refit, svm_c, fit_kwargs):
    """The linear head solved exactly; callbacks told of it as of one epoch."""
    head = _compiled_head(task, features, None)  # compiled: callbacks read its metrics
    weights = fit_kwargs.get("sample_weight")
    if getattr(task, "multi_label", False):
        history = fit_multi_label_head(head, dense, features, y, weights, *validation_data, seed, refit=refit, c=svm_c)
    else:
        history = fit_linear_head(
            head, dense, features, y, weights, *validation_data, seed, refit=refit, c=svm_c,
            class_weight=fit_kwargs.get("class_weight"),
        )  # fmt: skip
    callbacks = keras.callbacks.CallbackList(fit_kwargs.get("callbacks") or [], model=head)
    logs = {name: values[-1] for name, values in history.history.items()}
    callbacks.on_train_begin()
    callbacks.on_epoch_begin(0)
    callbacks.on_epoch_end(0, logs)
    callbacks.on_train_end(logs)
    return history


def head_probabilities(head, features, batch_size=256):
    """Softmax of the head's logits on `features`, as a numpy array."""
    logits = head.predict(features, batch_size=max(batch_size, 256), verbose=0)
    return softmax(logits)


def softmax(logits):
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)
