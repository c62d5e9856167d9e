"""`ImageBackbone`: Keras Applications ImageNet models that take raw images.

Resizing and the family's own preprocessing live inside the graph, so the
backbone (and any model built on it, and its SavedModel) takes raw images:
uint8 or float in [0, 255], of any size. Blocks are exposed in named groups,
bottom to top, so that fine-tuning can unfreeze "the top k groups".
"""

import collections
import os
import re

import keras

from tfxfer.settings import keras_cache_folder
from tfxfer.sources.architectures import ARCHITECTURES
from tfxfer.sources.registry import get_preset, presets
from tfxfer.validation import check_choice

_POOLINGS = (None, "avg", "max")


def _architecture(name):
    if name not in ARCHITECTURES:
        raise ValueError(
            f"Unknown backbone {name!r}. Known backbones: "
            f"{', '.join(sorted(ARCHITECTURES))}. Received: architecture={name!r}"
        )
    return ARCHITECTURES[name]


@keras.saving.register_keras_serializable(package="tfxfer")
class ApplicationPreprocessing(keras.layers.Layer):
    """Raw images -> the input of a Keras Applications model.

    Casts, resizes (bilinear) to `size` x `size`, and applies the family's
    `preprocess_input`. One layer with no `training` argument on purpose:
    `keras.layers.Resizing` defaults to `training=True`, which a model
    called without `training` passes on to the BatchNorm layers after it,
    silently updating their statistics at inference.

    Args:
        family: the `keras.applications` module, e.g. `"resnet"`,
            `"mobilenet_v2"`, `"efficientnet"`.
        size: side of the square the images are resized to.
    """

    def __init__(self, family, size, **kwargs):
        super().__init__(**kwargs)
        self.family = family
        self.size = int(size)
        self._preprocess = getattr(keras.applications, family).preprocess_input

    def call(self, images):
        images = keras.ops.cast(images, self.compute_dtype)
        if tuple(images.shape[1:3]) != (self.size, self.size):  # static shapes: decided when traced
            images = keras.ops.image.resize(images, (self.size, self.size))
        return self._preprocess(images)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "family": self.family, "size": self.size}


def _load_application(architecture, weights, input_size):
    spec = _architecture(architecture)
    constructor = getattr(keras.applications, spec.constructor)
    kwargs = dict(include_top=False, input_shape=(input_size, input_size, 3))
    if weights in (None, "imagenet"):
        try:
            return constructor(weights=weights, **kwargs)
        except Exception as error:  # the download: URL, HTTP or OS errors
            if weights is None:
                raise
            wanted = re.search(r"[\w.-]+\.h5", str(error))  # Keras' error quotes the URL of the file
            raise ConnectionError(
                f"Could not get the ImageNet weights of {architecture!r} "
                f"({type(error).__name__}: {error}). Without network, either copy "
                f"{repr(wanted.group(0)) if wanted else 'the Keras weights file'} into the Keras cache "
                f"('{keras_cache_folder('models')}'; set KERAS_HOME to move it), or pass a local "
                "'..._no_top.h5' file of any input size: weights='path/to/file.h5' "
                "(tfxfer fit image: --weights PATH)."
            ) from error
    path = os.path.expanduser(os.fspath(weights))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No weights file at '{weights}'. Pass weights='imagenet', None, "
            "or the path of a Keras Applications .h5 weights file for "
            f"{architecture!r} without the classifier (include_top=False)."
        )
    try:
        return constructor(weights=path, **kwargs)
    except (ValueError, KeyError, OSError) as error:
        raise ValueError(
            f"Could not load '{path}' into {architecture!r}: {error}. The file "
            f"must hold Keras Applications weights of {architecture!r} without "
            "the classifier (the '..._no_top.h5' file)."
        ) from error


@keras.saving.register_keras_serializable(package="tfxfer")
class ImageBackbone(keras.Model):
    """A Keras Applications backbone that takes raw images of any size.

    Args:
        architecture: one of `tfxfer.sources.applications.ARCHITECTURES`:
            `"resnet50"`, `"mobilenet_v2"`, `"efficientnet_b0"`, ...
        weights: `"imagenet"` (the Keras cache; downloaded when online), the
            path of a local `.h5` weights file (without the top), or `None`.
        input_size: side of the square the images are resized to; the
            architecture's ImageNet size by default.
        pooling: `"avg"` (default) or `"max"` for a feature vector, `None`
            for the feature map.

    Example:

    >>> import numpy as np, tfxfer
    >>> backbone = tfxfer.ImageBackbone("mobilenet_v2", weights=None, input_size=96)
    >>> backbone(np.zeros((2, 32, 32, 3), "uint8")).shape
    TensorShape([2, 1280])
    >>> list(backbone.block_groups)[-2:]
    ['block_16', 'top']
    """

    def __init__(self, architecture, weights="imagenet", input_size=None, pooling="avg", **kwargs):
        # keras.Model would swallow a misspelt argument silently.
        unknown = sorted(set(kwargs) - {"name", "trainable", "dtype"})
        if unknown:
            raise TypeError(
                f"ImageBackbone got unexpected arguments {unknown}; it takes architecture, "
                "weights, input_size, pooling, and Keras' name, trainable, dtype."
            )
        check_choice("pooling", pooling, _POOLINGS)
        spec = _architecture(architecture)
        input_size = int(input_size or spec.input_size)
        if input_size < 32:
            raise ValueError(f"input_size must be at least 32 pixels. Received: input_size={input_size}")

        # === Layers ===
        application = _load_application(architecture, weights, input_size)
        preprocessing = ApplicationPreprocessing(spec.family, input_size, name="preprocessing")
        pool = {
            "avg": keras.layers.GlobalAveragePooling2D(name="avg_pool"),
            "max": keras.layers.GlobalMaxPooling2D(name="max_pool"),
        }.get(pooling)

        # === Functional Model ===
        images = keras.Input((None, None, 3), name="images")
        features = application(preprocessing(images))
        if pool is not None:
            features = pool(features)
        kwargs.setdefault("name", f"{architecture}_backbone")
        super().__init__(images, features, **kwargs)

        # === Config ===
        self.architecture = architecture
        self.input_size = input_size
        self.pooling = pooling
        self.application = application

    @classmethod
    def from_preset(cls, preset, input_size=None, weights=None, **kwargs):
        """The backbone of a Keras Applications preset, e.g. `"resnet50/imagenet"`
        (`tfxfer.presets("image")`); `weights` may name a local `.h5` file
        that replaces the preset's."""
        preset_entry = get_preset(os.fspath(preset), "image")
        if preset_entry is None or not preset_entry.architecture:
            names = [p.name for p in presets("image") if p.architecture]
            raise ValueError(f"ImageBackbone presets are {names}. Received: preset={preset!r}")
        chosen = weights if weights is not None else (None if preset_entry.weights == "random" else "imagenet")
        return cls(preset_entry.architecture, weights=chosen, input_size=input_size, **kwargs)

    @property
    def block_groups(self):
        """Ordered dict, bottom to top: group name -> layers of that group."""
        group_of = _architecture(self.architecture).group_of
        groups = collections.OrderedDict()
        for layer in self.application.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            groups.setdefault(group_of(layer.name), []).append(layer)
        return groups

    def get_config(self):
        # Weights travel in the .keras file, not in the config.
        return {
            "architecture": self.architecture,
            "input_size": self.input_size,
            "pooling": self.pooling,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(weights=None, **config)
