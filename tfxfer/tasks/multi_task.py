"""`MultiTaskClassifier`: one pretrained source shared by several heads."""

import keras
import numpy as np

from tfxfer.data.texts import as_model_inputs
from tfxfer.distribute import MultiWorkerFit
from tfxfer.tasks.task import Task, source_input_spec

MISSING = -1  # the label of an example that a task has no label for


@keras.saving.register_keras_serializable(package="tfxfer")
class LabelledAccuracy(keras.metrics.SparseCategoricalAccuracy):
    """Accuracy over the examples that have a label: those labelled
    `MISSING` (-1) count for nothing, so each task's accuracy is over its
    own examples when tasks label different examples."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.reshape(keras.ops.convert_to_tensor(y_true), (-1,))
        labelled = keras.ops.cast(keras.ops.greater_equal(y_true, 0), "float32")
        if sample_weight is not None:
            labelled = labelled * keras.ops.reshape(keras.ops.cast(sample_weight, "float32"), (-1,))
        return super().update_state(keras.ops.maximum(y_true, 0), y_pred, sample_weight=labelled)


def task_balanced_indices(labels, seed=0):
    """Rows that balance the tasks of `labels` (`{task: labels}`, -1 for
    none): for each task, its labelled examples repeated (cycled, the rest
    drawn at random) to the count of the task with the most labels, and
    shuffled; with `keep[task]` saying which rows keep that task's labels
    (each row counts for the one task it was drawn for). None when every
    example has every label: nothing to balance."""
    labelled = {name: np.flatnonzero(np.asarray(values).reshape(-1) >= 0) for name, values in labels.items()}
    count = len(np.asarray(next(iter(labels.values()))).reshape(-1))
    if all(len(rows) == count for rows in labelled.values()):
        return None
    most = max(len(rows) for rows in labelled.values())
    rng = np.random.default_rng(seed)
    rows, tasks = [], []
    for task, examples in enumerate(labelled.values()):
        if len(examples):
            repeats, rest = divmod(most, len(examples))
            rows.append(np.concatenate([np.tile(examples, repeats), rng.choice(examples, rest, replace=False)]))
            tasks.append(np.full(most, task))
    order = rng.permutation(sum(len(part) for part in rows))
    rows, tasks = np.concatenate(rows)[order], np.concatenate(tasks)[order]
    return rows, {name: tasks == task for task, name in enumerate(labels)}


class MultiTaskHead(MultiWorkerFit, keras.Model):
    """A multi-task model's head layers on cached source features (`fit_head`)."""


def _checked_heads(heads):
    if not isinstance(heads, dict) or not heads:
        raise ValueError(f"heads must be a dict {{task name: number of classes}}. Received: heads={heads!r}")
    for name, count in heads.items():
        if not (isinstance(name, str) and name.isidentifier()):
            raise ValueError(f"Task names must be Python identifiers (they name the outputs). Received: {name!r}")
        if int(count) < 2:
            raise ValueError(f"Task {name!r} needs at least 2 classes. Received: heads={heads!r}")
    return {name: int(count) for name, count in heads.items()}


def _checked_loss_weights(loss_weights, heads):
    loss_weights = dict.fromkeys(heads, 1.0) if loss_weights is None else dict(loss_weights)
    if set(loss_weights) != set(heads):
        raise ValueError(f"loss_weights must name every task once: {sorted(heads)}. Received: {sorted(loss_weights)}")
    return {name: float(loss_weights[name]) for name in heads}


def _source_input(source, input_shape, input_dtype):
    """The input shape and dtype of the task: given, or read from the source."""
    if input_shape is not None:
        return tuple(input_shape), input_dtype or "float32"
    spec = source_input_spec(source)
    if spec is None:
        raise ValueError("The source does not declare its input shape; pass input_shape=... (and input_dtype=...).")
    return spec[0], input_dtype or spec[1]


@keras.saving.register_keras_serializable(package="tfxfer")
class MultiTaskClassifier(Task):
    """One source, several classification heads: one output (logits) per task.

    The source's features are pooled (a feature map) and standardised
    (`feature_scaling`), as in `ImageClassifier`; each task has its own dense
    layer on them. Tasks may label different examples: a label of -1
    (`MISSING`) means "no label for this task", and that example adds
    nothing to the task's loss (its mean is over the labelled examples) or
    accuracy. Train with `fit` (labels as a dict `{task: labels}`),
    `fit_head` or `fine_tune`; `tfxfer.export` serves one probability
    output per task.

    Args:
        backbone: the shared source (an `ImageBackbone`, `HubFeatures`, a
            text encoder, or any Keras model).
        heads: `{task name: number of classes}`; names are identifiers.
        loss_weights: `{task name: weight}` of each task's loss in the total;
            1 each by default.
        input_shape, input_dtype: the model's input, read from the source
            by default.
        dropout, l2_sp, head_l2: as for `ImageClassifier`.

    Example:

    >>> import numpy as np, keras, tfxfer
    >>> source = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu")])
    >>> model = tfxfer.MultiTaskClassifier(source, heads={"kind": 3, "odd": 2})
    >>> model.compile()
    >>> x = np.random.default_rng(0).normal(size=(8, 6)).astype("float32")
    >>> labels = {"kind": np.array([0, 1, 2, 0, -1, -1, -1, -1]), "odd": np.array([-1] * 4 + [0, 1, 0, 1])}
    >>> _ = model.fit(x, labels, epochs=1, verbose=0)
    >>> {name: out.shape for name, out in model.predict(x, verbose=0).items()}
    {'kind': (8, 3), 'odd': (8, 2)}
    """

    def __init__(
        self,
        backbone,
        heads,
        loss_weights=None,
        dropout=0.2,
        input_shape=None,
        input_dtype=None,
        l2_sp=None,
        head_l2=None,
        **kwargs,
    ):
        heads = _checked_heads(heads)
        loss_weights = _checked_loss_weights(loss_weights, heads)
        input_shape, input_dtype = _source_input(backbone, input_shape, input_dtype)

        # === Layers ===
        self.backbone = backbone
        self.pooling = keras.layers.GlobalAveragePooling2D(name="pooling")
        self.feature_scaling = self._scaling_layer()
        self.head_dropout = keras.layers.Dropout(dropout, name="head_dropout")
        self.task_heads = {name: self._logits_layer(count, head_l2, name=name) for name, count in heads.items()}

        # === Functional Model ===
        inputs = keras.Input(input_shape, dtype=input_dtype, name="inputs")
        features = self._anchored(backbone(inputs), l2_sp)
        super().__init__(inputs, self._heads_on(features), **kwargs)

        # === Config ===
        self._keep_config(max(heads.values()), dropout, l2_sp, head_l2)
        self.heads, self.loss_weights = heads, loss_weights
        self.source_input = (input_shape, str(input_dtype))
        self._compile_defaults()

    @property
    def task_count(self):
        return len(self.heads)

    def _heads_on(self, features):
        if len(features.shape) == 4:
            features = self.pooling(features)
        shared = self.head_dropout(self.feature_scaling(features))
        return {name: layer(shared) for name, layer in self.task_heads.items()}

    def head_on_features(self, features):
        """The head layers as a model on cached `features` (shared weights)."""
        inputs = keras.Input(features.shape[1:])
        return MultiTaskHead(inputs, self._heads_on(inputs))

    def compile(self, optimizer="auto", loss="auto", metrics="auto", loss_weights="auto", **kwargs):
        """`Task.compile`, per task: `"auto"` is a cross-entropy on logits that
        skips missing labels (-1), `LabelledAccuracy`, and the model's
        `loss_weights`."""
        if loss == "auto":
            loss = {
                name: keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=MISSING)
                for name in self.heads
            }
        if metrics == "auto":
            metrics = {name: [LabelledAccuracy(name="accuracy")] for name in self.heads}
        if loss_weights == "auto":
            loss_weights = dict(self.loss_weights)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=loss_weights, **kwargs)

    def balance_tasks(self, x, y, sample_weight=None, seed=0):
        """`x`, `y`, `sample_weight` resampled by `task_balanced_indices`:
        a task with few labels then weighs as much per step as one with many
        (`fit_head` and `fine_tune` do this for array data; without it, a
        task labelled on 25 examples beside one labelled on 250 gets a tenth
        of the steps and lost 14 points on digits, benchmarks/multi_task.py).
        Returned unchanged when every example has every label."""
        balanced = task_balanced_indices(y, seed)
        if balanced is None:
            return x, y, sample_weight
        rows, keep = balanced
        y = {name: np.where(keep[name], np.asarray(labels).reshape(-1)[rows], MISSING) for name, labels in y.items()}
        weights = None if sample_weight is None else np.asarray(sample_weight)[rows]
        return x[rows], y, weights

    def prepare_inputs(self, x):
        return as_model_inputs(x) if self.source_input[1] == "string" else x

    def check_labels(self, labels):
        """Labels are a dict with every task: integers in [-1, classes)."""
        if labels is None or not isinstance(labels, dict):
            if isinstance(labels, np.ndarray | list | tuple):
                raise ValueError(
                    f"A multi-task model takes labels as a dict {{task: labels}} for the tasks {sorted(self.heads)}; "
                    "use -1 where an example has no label for a task."
                )
            return
        missing, unknown = set(self.heads) - set(labels), set(labels) - set(self.heads)
        if missing or unknown:
            raise ValueError(
                f"The labels must name every task, {sorted(self.heads)}: missing {sorted(missing)}, "
                f"unknown {sorted(unknown)}. Give a task without labels an array of -1."
            )
        counts = {name: len(values) for name, values in labels.items()}
        if len(set(counts.values())) > 1:
            raise ValueError(f"Every task needs one label per example (-1 when none); received counts {counts}.")
        for name, values in labels.items():
            values = np.asarray(values).reshape(-1)
            if values.size and (values.min() < MISSING or values.max() >= self.heads[name]):
                raise ValueError(
                    f"Labels of task {name!r} must be integers in [0, {self.heads[name]}), or -1 for none; "
                    f"found {values.min()}..{values.max()}."
                )

    @property
    def head_layers(self):
        return [self.pooling, self.feature_scaling, self.head_dropout, *self.task_heads.values()]

    def get_config(self):
        config = super().get_config()
        for key in ("num_classes", "class_names", "multi_label", "thresholds"):  # one head per task, not one set
            del config[key]
        shape, dtype = self.source_input
        return {
            **config,
            "heads": dict(self.heads),
            "loss_weights": dict(self.loss_weights),
            "input_shape": list(shape),
            "input_dtype": dtype,
        }
