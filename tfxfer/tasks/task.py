"""`Task`: what every tfxfer task model shares (KerasHub's Task, in small)."""

import copy
import functools
import inspect

import keras
import numpy as np
import scipy.sparse

from tfxfer.distribute import MultiWorkerFit
from tfxfer.methods.regularization import SourceAnchor
from tfxfer.tasks.labels import ClassLabels, choose_thresholds
from tfxfer.transfer.contract import Transferable

CONSTANT_VARIANCE = 1e-8  # a feature whose variance is this or less is constant: scaled by 1


def source_input_spec(source):
    """`(shape, dtype)` of a source's input without the batch axis: declared
    by a module layer (`HubFeatures`, `KerasHubFeatures`) or read from a
    Keras model's input; None when the source does not say."""
    shape = getattr(source, "module_input_shape", None)
    if shape is not None:
        return tuple(shape), keras.backend.standardize_dtype(source.module_dtype)
    if isinstance(source, keras.Model) and source.inputs:
        return tuple(source.inputs[0].shape[1:]), source.inputs[0].dtype
    return None


def _through_prepare_inputs(method):
    """`keras.Model.<method>` (its signature and docs) with the inputs passed
    through `Task.prepare_inputs` and the labels checked."""

    @functools.wraps(getattr(keras.Model, method))
    def call(self, *args, **kwargs):
        return self._keras_call(method, *args, **kwargs)

    return call


class Task(Transferable, MultiWorkerFit, keras.Model):
    """A functional model made of `.backbone` (the pretrained source) and
    `.head_layers` (trained from scratch), compiled on construction with
    sensible defaults (as KerasHub's tasks are), so `fit` works at once. It
    trains under every `tf.distribute` strategy, several workers included
    (`MultiWorkerFit`), and implements the strategies' contract
    (`tfxfer.transfer.contract.Transferable`).

    Subclasses build the graph, call `_keep_config` and `_compile_defaults`,
    define `head_layers` and add their own arguments to `get_config`.
    """

    def _anchored(self, features, l2_sp):
        """`features`, through an L2-SP `SourceAnchor` on `self.backbone` when `l2_sp`."""
        self.source_anchor = SourceAnchor(l2_sp, name="source_anchor").watch(self.backbone) if l2_sp else None
        return self.source_anchor(features) if l2_sp else features

    @staticmethod
    def _logits_layer(num_classes, head_l2, name="logits"):
        """The float32 output layer, with plain L2 on its kernel when `head_l2`."""
        regularizer = keras.regularizers.L2(head_l2) if head_l2 else None
        return keras.layers.Dense(num_classes, dtype="float32", kernel_regularizer=regularizer, name=name)

    @staticmethod
    def _scaling_layer():
        """Standardises the source's pooled features before the head (a fixed
        affine map once adapted; the identity before). A linear head then
        trains at one learning rate whatever the source's feature scale."""
        return keras.layers.Normalization(axis=-1, name="feature_scaling")

    def adapt_feature_scaling(self, features, refresh=False):
        """Sets the head's feature scaling from `features` (the source's
        output for the training inputs), once: a second call keeps the first
        statistics, which the trained head depends on, unless `refresh` (for
        a head about to be trained afresh, on a fine-tuned source's
        features). A feature constant on `features` (a ReLU unit dead on
        them) is centred but not divided by its zero spread: fine-tuning can
        revive it, and 1/epsilon would blow it up. Returns whether it adapted."""
        layer = getattr(self, "feature_scaling", None)
        if layer is None or (self.feature_scaling_adapted and not refresh):
            return False
        if scipy.sparse.issparse(features):
            raise ValueError(
                f"The source's features are sparse ({features.shape[1]} wide, a TF-IDF): they come "
                "scaled from the source. Build the task with feature_scaling=False."
            )
        features = np.asarray(features, dtype="float32")
        if features.ndim == 4:  # a feature map: the head pools it first
            features = features.mean(axis=(1, 2))
        layer.adapt(features)
        mean, variance, *rest = layer.get_weights()
        layer.set_weights([mean, np.where(variance > CONSTANT_VARIANCE, variance, 1.0), *rest])
        layer.finalize_state()  # the layer computes with copies of its weights, made here
        return True

    @property
    def feature_scaling_adapted(self):
        """Whether the feature scaling holds statistics (adapted, or loaded):
        anything but its initial mean 0 and variance 1. (Keras' `count`
        weight cannot tell: `adapt` leaves it at 0.)"""
        layer = getattr(self, "feature_scaling", None)
        if layer is None or not layer.built:
            return False
        mean, variance = layer.get_weights()[:2]
        return bool(np.any(mean != 0) or np.any(variance != 1))

    def _compile_defaults(self):
        """The construction's compile: `"auto"` everywhere. The strategies
        treat it as no choice of the user's (`compiled_by_user`), so
        `fit_head` and `fine_tune` still bring their own schedules."""
        self.compile()
        self.compiled_by_default = True

    @property
    def compiled_by_user(self):
        return bool(self.compiled) and not getattr(self, "compiled_by_default", False)

    def ensure_compiled(self):
        if not self.compiled:
            self._compile_defaults()

    def check_inputs(self, x):
        self.prepare_inputs(x)

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """`keras.Model.compile` with defaults for integer labels and logits.

        `"auto"`: Adam at 1e-3, sparse categorical cross-entropy on logits,
        accuracy; for a multi-label model, binary cross-entropy on logits
        and the binary accuracy of the labels.
        """
        self.compiled_by_default = False
        if optimizer == "auto":
            with self.distribute_strategy.scope():
                optimizer = keras.optimizers.Adam(1e-3)
        if loss == "auto":
            loss = (
                keras.losses.BinaryCrossentropy(from_logits=True)
                if self.multi_label
                else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            )
        if metrics == "auto":
            metrics = [
                keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)  # on logits: 0 is probability 0.5
                if self.multi_label
                else keras.metrics.SparseCategoricalAccuracy(name="accuracy")
            ]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # Our compile() takes Keras' arguments, so a saved compile config
        # (optimizer state included) restores as Keras' own would.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def prepare_inputs(self, x):
        """The one hook for inputs: `fit`, `evaluate`, `predict` and the
        `*_on_batch` methods pass `x` (and validation inputs) through it.
        Subclasses check or convert what users hand them."""
        return x

    def _keras_call(self, method, *args, **kwargs):
        """Calls `keras.Model.<method>` with Keras' own signature, after the
        inputs went through `prepare_inputs` and the labels were checked."""
        keras_method = getattr(keras.Model, method)
        bound = inspect.signature(keras_method).bind(self, *args, **kwargs)
        arguments = bound.arguments
        arguments["x"] = self.prepare_inputs(arguments.get("x"))
        self.check_labels(arguments.get("y"))
        validation = arguments.get("validation_data")
        if isinstance(validation, tuple | list) and validation:
            arguments["validation_data"] = (self.prepare_inputs(validation[0]), *validation[1:])
            self.check_labels(validation[1] if len(validation) > 1 else None)
        return getattr(super(), method)(*bound.args[1:], **bound.kwargs)

    fit = _through_prepare_inputs("fit")
    evaluate = _through_prepare_inputs("evaluate")
    predict = _through_prepare_inputs("predict")
    train_on_batch = _through_prepare_inputs("train_on_batch")
    test_on_batch = _through_prepare_inputs("test_on_batch")
    predict_on_batch = _through_prepare_inputs("predict_on_batch")

    @property
    def head_layers(self):
        """The layers trained from scratch (everything but the source)."""
        raise NotImplementedError

    def check_labels(self, labels):
        """Raises a clear error for integer labels outside [0, num_classes).

        Keras would otherwise fail deep inside the loss (or train on NaN).
        Datasets and tensors are passed over: they are checked as they stream.
        """
        if labels is None or not isinstance(labels, np.ndarray | list | tuple):
            return
        if self.multi_label:
            values = np.asarray(labels)
            if values.ndim != 2 or values.shape[1] != self.num_classes or not np.isin(values, (0, 1)).all():
                raise ValueError(
                    f"A multi-label model takes labels as multi-hot rows (n, {self.num_classes}) of 0 and 1; "
                    f"received shape {values.shape}. Encode each example's label set as one row."
                )
            return
        values = np.asarray(labels).reshape(-1)
        if values.size and (values.min() < 0 or values.max() >= self.num_classes):
            raise ValueError(
                f"Labels must be integers in [0, {self.num_classes}) for num_classes={self.num_classes}; "
                f"found {values.min()}..{values.max()}. Remap the labels, or build the model with "
                f"num_classes={int(values.max()) + 1}."
            )

    def _keep_config(self, num_classes, dropout, l2_sp, head_l2, class_labels=None):
        self.num_classes, self.dropout = int(num_classes), dropout
        self.l2_sp, self.head_l2 = l2_sp, head_l2
        self.class_labels = class_labels or ClassLabels.numbered(num_classes)

    @property
    def class_names(self):
        """The class names, in label order (`"0"`, `"1"`, ... when none were given)."""
        return list(self.class_labels.names)

    @property
    def multi_label(self):
        """Whether each example may have several labels (sigmoid outputs)."""
        return getattr(self, "class_labels", None) is not None and self.class_labels.multi_label

    def probabilities(self, x, batch_size=64):
        """Class probabilities for raw inputs `x`: softmax of the logits, or
        one sigmoid per class for a multi-label model."""
        return self.class_labels.probabilities(self.predict(x, batch_size=batch_size, verbose=0))

    def choose_thresholds(self, x, y, batch_size=64):
        """A multi-label model's per-class thresholds, set to those of best
        F1 on `(x, y)` (validation data, multi-hot `y`); returns them."""
        if not self.multi_label:
            raise ValueError("choose_thresholds applies to multi-label models (multi_label=True).")
        thresholds = choose_thresholds(self.probabilities(x, batch_size), y)
        self.class_labels = self.class_labels.with_thresholds(thresholds)
        return thresholds

    def predict_labels(self, x, top_k=1, batch_size=64):
        """Named predictions for raw inputs `x` (images, or texts): per input
        a dict with `label` (the class name), `probability`, and `top_k`
        `[name, probability]` pairs; a multi-label model also gives
        `labels`, the names whose probability reaches their class threshold.

        >>> import tfxfer
        >>> texts = ["orbit", "faith", "a launch to orbit", "faith in god"]
        >>> model = tfxfer.TextClassifier.from_word_vectors(None, texts, num_classes=2, dim=8,
        ...                                                 class_names=["sci.space", "religion"])
        >>> row = model.predict_labels(["orbit"], top_k=2)[0]
        >>> row["label"] in model.class_names, [name for name, _ in row["top_k"]] == sorted(
        ...     model.class_names, key=lambda n: -dict(row["top_k"])[n])
        (True, True)
        """
        return self.class_labels.rows(self.probabilities(x, batch_size), top_k)

    def get_config(self):
        """What every task shares; subclasses add their own arguments."""
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "dropout": self.dropout,
            "l2_sp": self.l2_sp,
            "head_l2": self.head_l2,
            **self.class_labels.config(),
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # Keras' deserialization consumes the nested config it is given
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
