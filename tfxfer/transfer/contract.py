"""What the strategies ask of a model: the one contract between `transfer/`
and the models it trains.

`fit_head`, `fit_stage`, `fine_tune` and `self_train` work on a *task*: a
Keras model whose `.backbone` is the pretrained source and whose other
layers are the head. `Transferable` names everything they ask of it, with
defaults; tfxfer's `Task` implements it, and any other `keras.Model` with a
`.backbone` is given the defaults by `contract(model)`:

>>> import keras, tfxfer
>>> from tfxfer.transfer.contract import contract
>>> source = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="source")
>>> model = keras.Sequential([source, keras.layers.Dense(2)])
>>> model.backbone = source
>>> task = contract(model)
>>> task.fine_tuning_rates(), [layer.name for layer in task.head_layers] == [model.layers[1].name]
((0.001, 0.1), True)
"""

import keras

from tfxfer.distribute import MultiWorkerFit


class Transferable:
    """The contract: what a model gives the strategies, with defaults.

    A model must have `.backbone`, the source layer; its layers after it
    are the head. The rest has defaults a task model overrides.
    """

    feature_scaling = None  # a `Normalization` before the head, adapted on the source's features

    def check_labels(self, labels):
        """Raise a clear error for labels the model cannot learn from."""

    def check_inputs(self, x):
        """Raise a clear error for inputs the source cannot read."""

    def fine_tuning_rates(self):
        """`(learning_rate, source_rate)` for `"auto"`: the head's peak rate and
        the multiplier of the source's top group. A deep pretrained stack
        moves at a tenth of the head's rate, so its lower features survive
        the first noisy steps."""
        return 1e-3, 0.1

    @property
    def fine_tunes_by_default(self):
        """Whether the recipes fine-tune the source after the head for `"auto"` epochs."""
        return True

    @property
    def feature_scaling_adapted(self):
        return False

    def adapt_feature_scaling(self, features, refresh=False):
        """Set the head's feature scaling from the source's `features`; whether it did."""
        return False

    @property
    def head_layers(self):
        """The layers trained from scratch: those after the source."""
        layers = list(self.layers)
        return layers[layers.index(self.backbone) + 1 :]

    def head_on_features(self, features):
        """The head layers as a model on cached `features` (the weights shared)."""
        layers = list(self.head_layers)
        if len(features.shape) != 4:  # features already pooled by the source
            layers = [layer for layer in layers if not isinstance(layer, keras.layers.GlobalAveragePooling2D)]
        return HeadOnFeatures([keras.Input(features.shape[1:]), *layers])

    def balance_tasks(self, x, y, sample_weight=None):
        """`x, y, sample_weight` resampled so that each task weighs the same (one task: as they are)."""
        return x, y, sample_weight

    @property
    def task_count(self):
        return 1

    @property
    def compiled_by_user(self):
        """Whether the model's optimizer, loss and metrics are the user's own
        (a stage then trains with them), not defaults."""
        return bool(self.compiled) and self.optimizer is not None

    def ensure_compiled(self):
        """Compile with the task's defaults when nothing compiled the model yet."""
        if not self.compiled:
            raise ValueError(
                f"{type(self).__name__} is not compiled and has no default loss: call model.compile(loss=...) first."
            )

    def kept_compile_arguments(self):
        """The loss, metrics and other `compile` arguments (all but the
        optimizer), so that a stage that needs its own optimizer keeps the
        rest; `{}` for a model never compiled."""
        if not self.compiled:
            return {}
        arguments = keras.saving.deserialize_keras_object(self.get_compile_config())
        arguments.pop("optimizer", None)
        return {key: value for key, value in arguments.items() if value is not None}


class HeadOnFeatures(MultiWorkerFit, keras.Sequential):
    """A task's head layers on cached features, trainable on any strategy."""


class _PlainModel(Transferable):
    """A `keras.Model` with `.backbone` seen through the contract's defaults;
    everything else is the model's own."""

    def __init__(self, model):
        object.__setattr__(self, "model", model)

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __setattr__(self, name, value):
        setattr(self.model, name, value)


def contract(model):
    """`model` itself when it implements `Transferable` (a tfxfer task), else
    `model` seen through the contract's defaults."""
    if isinstance(model, Transferable):
        return model
    if not isinstance(model, keras.Model) or getattr(model, "backbone", None) is None:
        raise TypeError(
            "tfxfer's strategies train a keras.Model whose .backbone is the pretrained source (a tfxfer task such "
            f"as ImageClassifier, or your own model with model.backbone = source). Received: {type(model).__name__}"
        )
    return _PlainModel(model)
