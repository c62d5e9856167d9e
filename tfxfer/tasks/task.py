"""`Task`: what every tfxfer task model shares (KerasHub's Task, in small)."""

import keras
import numpy as np

from tfxfer.distribute import MultiWorkerFit
from tfxfer.methods.regularization import SourceAnchor


class Task(MultiWorkerFit, keras.Model):
    """A functional model made of `.backbone` (the pretrained source) and
    `.head_layers` (trained from scratch), compiled with sensible defaults.
    It trains under every `tf.distribute` strategy, several workers included
    (`MultiWorkerFit`).

    Subclasses build the graph, call `_keep_config`, define `head_layers` and
    add their own arguments to `get_config`.
    """

    def _anchored(self, features, l2_sp):
        """`features`, through an L2-SP `SourceAnchor` on `self.backbone` when `l2_sp`."""
        self.source_anchor = SourceAnchor(l2_sp, name="source_anchor").watch(self.backbone) if l2_sp else None
        return self.source_anchor(features) if l2_sp else features

    @staticmethod
    def _logits_layer(num_classes, head_l2):
        """The float32 output layer, with plain L2 on its kernel when `head_l2`."""
        regularizer = keras.regularizers.L2(head_l2) if head_l2 else None
        return keras.layers.Dense(num_classes, dtype="float32", kernel_regularizer=regularizer, name="logits")

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """`keras.Model.compile` with defaults for integer labels and logits.

        `"auto"`: Adam at 1e-3, sparse categorical cross-entropy on logits,
        accuracy.
        """
        if optimizer == "auto":
            with self.distribute_strategy.scope():
                optimizer = keras.optimizers.Adam(1e-3)
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # Our compile() takes Keras' arguments, so a saved compile config
        # (optimizer state included) restores as Keras' own would.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

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
        values = np.asarray(labels).reshape(-1)
        if values.size and (values.min() < 0 or values.max() >= self.num_classes):
            raise ValueError(
                f"Labels must be integers in [0, {self.num_classes}) for num_classes={self.num_classes}; "
                f"found {values.min()}..{values.max()}. Remap the labels, or build the model with "
                f"num_classes={int(values.max()) + 1}."
            )

    def _keep_config(self, num_classes, dropout, l2_sp, head_l2):
        self.num_classes, self.dropout = int(num_classes), dropout
        self.l2_sp, self.head_l2 = l2_sp, head_l2

    def get_config(self):
        """What every task shares; subclasses add their own arguments."""
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "dropout": self.dropout,
            "l2_sp": self.l2_sp,
            "head_l2": self.head_l2,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
