"""`ImageClassifier`: a pretrained image source with a classification head."""

import keras
import numpy as np

from tfxfer.sources.resolve import image_source
from tfxfer.tasks.labels import ClassLabels
from tfxfer.tasks.task import Task, source_input_spec


@keras.saving.register_keras_serializable(package="tfxfer")
class ImageClassifier(Task):
    """A source (`ImageBackbone`, `HubFeatures`, or any Keras model) and a head.

    The head pools a feature map (global average), standardises the
    features (`feature_scaling`, adapted by `fit_head` and `fine_tune` on
    the training data), applies dropout and a dense layer whose logits are
    float32, also under mixed precision.

    Args:
        backbone: the source layer or model.
        num_classes: number of classes.
        dropout: dropout rate before the dense layer.
        input_shape: the image shape without batch; read from the source by
            default (`(None, None, 3)` for an `ImageBackbone`).
        l2_sp: strength of the L2-SP penalty pulling the source's weights
            towards their starting values (`tfxfer.methods.SourceAnchor`).
        head_l2: plain L2 on the new dense layer's kernel.
        class_names: the classes' names in label order, saved with the
            model (`predict_labels`, the export's outputs).
        multi_label: each example may have several labels: one sigmoid per
            class (labels as multi-hot rows), binary cross-entropy.
        thresholds: a multi-label model's per-class decision thresholds.

    Example:

    >>> import numpy as np, tfxfer
    >>> model = tfxfer.ImageClassifier.from_preset("mobilenet_v2/random",
    ...                                            num_classes=10, input_size=32)
    >>> model.compile()
    >>> model.predict(np.zeros((2, 40, 40, 3), "uint8"), verbose=0).shape
    (2, 10)
    """

    def __init__(
        self,
        backbone,
        num_classes,
        dropout=0.2,
        input_shape=None,
        l2_sp=None,
        head_l2=None,
        *,
        class_names=None,
        multi_label=False,
        thresholds=None,
        **kwargs,
    ):
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2. Received: num_classes={num_classes}")
        class_labels = ClassLabels.of(num_classes, class_names, multi_label, thresholds)
        input_shape = tuple(input_shape or (source_input_spec(backbone) or ((),))[0])
        if not input_shape:
            raise ValueError("The source does not declare its input shape; pass input_shape=(height, width, channels).")

        # === Layers ===
        self.backbone = backbone
        self.pooling = keras.layers.GlobalAveragePooling2D(name="pooling")
        self.feature_scaling = self._scaling_layer()
        self.head_dropout = keras.layers.Dropout(dropout, name="head_dropout")
        self.head = self._logits_layer(num_classes, head_l2)

        # === Functional Model ===
        images = keras.Input(input_shape, name="images")
        features = backbone(images)
        features = self._anchored(features, l2_sp)
        if len(features.shape) == 4:
            features = self.pooling(features)
        logits = self.head(self.head_dropout(self.feature_scaling(features)))
        super().__init__(images, logits, **kwargs)

        # === Config ===
        self._keep_config(num_classes, dropout, l2_sp, head_l2, class_labels)
        self.image_shape = input_shape
        self._compile_defaults()

    def check_images(self, images):
        """Raises a clear error for an array that is not a batch of images with
        this model's channel count (Keras would fail inside the source)."""
        if not isinstance(images, np.ndarray) or len(self.image_shape) != 3:
            return  # datasets stream; a non-image input shape is the user's own
        channels = self.image_shape[-1]
        if images.ndim == 4 and channels in (None, images.shape[-1]):
            return
        fixes = {
            (3, 1): "grayscale images: repeat the channel, np.repeat(images, 3, axis=-1)",
            (3, 4): "RGBA images: drop the alpha channel, images[..., :3]",
            (1, 3): "colour images: convert to grey, images.mean(axis=-1, keepdims=True)",
        }
        fix = (
            ("a single image or a batch without channels: add the missing axis (images[None] or images[..., None])")
            if images.ndim == 3
            else fixes.get((channels, images.shape[-1]), "resample or slice the channels")
        )
        raise ValueError(
            f"This model takes images (batch, height, width, {channels}); received shape {images.shape}. For {fix}."
        )

    def prepare_inputs(self, x):
        self.check_images(x)
        return x

    @classmethod
    def from_preset(
        cls,
        preset,
        num_classes,
        dropout=0.2,
        l2_sp=None,
        head_l2=None,
        class_names=None,
        multi_label=False,
        **source_kwargs,
    ):
        """A classifier on a named source, e.g. `"mobilenet_v2/imagenet"`.

        `preset`: a name from `tfxfer.presets("image")`, a KerasHub preset
        (a name, a `kaggle://` or `hf://` handle, a preset folder: its image
        converter runs inside the model), a TF-Hub handle or a SavedModel
        folder. `source_kwargs` go to the source: `input_size`
        and `weights` (a local `.h5` file) for Keras Applications presets,
        e.g. `input_size=96`. `class_names`, `multi_label`: as the
        constructor takes them.
        """
        source = image_source(preset, **source_kwargs)
        labels = {"class_names": class_names, "multi_label": multi_label}
        return cls(source, num_classes, dropout=dropout, l2_sp=l2_sp, head_l2=head_l2, **labels)

    @property
    def head_layers(self):
        """The layers trained from scratch (everything but the source)."""
        return [self.pooling, self.feature_scaling, self.head_dropout, self.head]

    def get_config(self):
        return {**super().get_config(), "input_shape": list(self.image_shape)}
