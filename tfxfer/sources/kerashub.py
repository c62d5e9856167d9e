"""`KerasHubFeatures`: a KerasHub preset (backbone and its preprocessing) as a source.

KerasHub is the Keras 3 successor of TF-Hub: a preset is a folder (or a
`kaggle://` / `hf://` handle, or a name KerasHub knows) holding a backbone's
config and weights beside its preprocessing: an image converter (resize,
rescale) or a tokenizer and packer. This layer holds both, so a model on it
takes raw images or raw strings, trains, saves to `.keras` and exports as
any other tfxfer source; its output is one vector per input (pooled
feature map, `pooled_output`, or the first token's vector).
"""

import collections
import functools
import os
import re

import keras

PRESET_FILES = ("config.json", "metadata.json")
HANDLE_SCHEMES = ("kaggle://", "hf://", "modelscope://")
# Names of repeated blocks in KerasHub backbones: each is one group for
# `unfreeze`; layers before the first block are the stem (or embeddings),
# layers after the last are the top (or pooler).
_BLOCK = re.compile(r"^(stack\d+_block\d+|transformer_layer_\d+|block\d+[a-z]?|stage\d+(_block\d+)?)(_|$)")


def is_preset_folder(folder):
    """A local folder in KerasHub's preset layout."""
    return os.path.isdir(folder) and all(os.path.isfile(os.path.join(folder, name)) for name in PRESET_FILES)


def is_kerashub_handle(handle):
    """A `kaggle://`, `hf://` handle, or a local folder in KerasHub's preset layout."""
    handle = os.path.expanduser(os.fspath(handle))
    return handle.startswith(HANDLE_SCHEMES) or is_preset_folder(handle)


@functools.cache
def known_presets(kind):
    """`{name: (description, kaggle handle)}` of the presets KerasHub knows
    for image or text classification."""
    keras_hub = _keras_hub()
    table = keras_hub.models.TextClassifier.presets if kind == "text" else keras_hub.models.ImageClassifier.presets
    return {name: (info["metadata"]["description"], info["kaggle_handle"]) for name, info in table.items()}


def preset_rows():
    """`(name, kind, description, location)` of each KerasHub classification
    preset: where it is cached, or that it downloads on first use."""
    rows = []
    for kind in ("image", "text"):
        for name, (description, handle) in known_presets(kind).items():
            folder = kaggle_cache_folder(handle)
            location = f"cached: {folder}" if is_preset_folder(folder) else f"downloads on first use ({handle})"
            rows.append((name, kind, description, location))
    return rows


def is_kerashub_name(name, kind):
    """Whether `name` is a preset KerasHub knows (e.g. `"bert_tiny_en_uncased"`)."""
    try:
        return name in known_presets(kind)
    except ImportError:
        return False


def kaggle_cache_folder(handle):
    """Where KaggleHub caches a `kaggle://owner/model/framework/variation/version`
    handle (`KAGGLEHUB_CACHE` honoured), or None for another kind of handle."""
    if not handle.startswith("kaggle://"):
        return None
    from kagglehub.config import get_cache_folder  # KerasHub's own downloader

    parts = handle[len("kaggle://") :].strip("/").split("/")
    return os.path.join(get_cache_folder(), "models", *parts)


def local_preset(preset, kind):
    """The local folder to load `preset` from when it is one, or is in
    KaggleHub's cache; else the handle itself (KerasHub downloads it)."""
    preset = os.path.expanduser(os.fspath(preset))
    if is_preset_folder(preset):
        return preset
    if not preset.startswith(HANDLE_SCHEMES) and is_kerashub_name(preset, kind):
        preset = known_presets(kind)[preset][1]
    cached = kaggle_cache_folder(preset)
    return cached if cached and is_preset_folder(cached) else preset


def _keras_hub():
    try:
        import keras_hub
    except ImportError as error:  # a dependency, but an environment may lack it
        raise ImportError("KerasHub presets need the keras-hub package: pip install keras-hub") from error
    return keras_hub


def load_preset(preset):
    """`(backbone, preprocessing)` of a KerasHub preset: the backbone, and
    its text preprocessor (tokenizer and packer) or image converter."""
    keras_hub = _keras_hub()
    preset = os.fspath(preset)
    try:
        backbone = keras_hub.models.Backbone.from_preset(preset)
    except Exception as error:  # network, missing files and unknown names alike
        raise _unavailable(preset, error) from None
    if _is_text(backbone):
        preprocessing = keras_hub.models.TextClassifierPreprocessor.from_preset(preset)
    else:
        preprocessing = keras_hub.layers.ImageConverter.from_preset(preset)
    return backbone, preprocessing


def _unavailable(preset, error):
    local = os.path.isdir(preset)
    if local:
        return FileNotFoundError(
            f"'{preset}' is no complete KerasHub preset ({type(error).__name__}: {error}). A preset folder "
            f"holds {' and '.join(PRESET_FILES)}, the weights and the preprocessing files that "
            "backbone.save_to_preset() and preprocessor.save_to_preset() write."
        )
    folder = kaggle_cache_folder(preset)
    where = (
        f"tfxfer looked for it in '{folder}' (KAGGLEHUB_CACHE chooses the cache): copy the preset's files "
        f"({', '.join(PRESET_FILES)}, the weights and the preprocessing files) into that folder"
        if folder
        else "download it where there is network (huggingface-cli download, or keras_hub's from_preset)"
    )
    return ConnectionError(
        f"Could not load the KerasHub preset '{preset}' ({type(error).__name__}: {str(error)[:200]}). Offline, "
        f"{where}, or pass the local preset folder as the source."
    )


def _is_text(backbone):
    return getattr(backbone, "token_embedding", None) is not None  # None on image backbones


@keras.saving.register_keras_serializable(package="tfxfer")
class KerasHubFeatures(keras.layers.Layer):
    """A KerasHub backbone with its preprocessing, raw inputs in, one vector out.

    Images (uint8 or float, any size) go through the preset's image
    converter, the backbone, and global average pooling of its feature map;
    strings through the tokenizer and packer, the backbone, and its
    `pooled_output` (the `[CLS]` vector when it has none). `trainable`
    is honest: frozen by default, and `unfreeze` works by `block_groups`
    (the stem or embeddings, each repeated block, the top or pooler).

    Args:
        backbone: a `keras_hub.models.Backbone`.
        preprocessing: its `TextClassifierPreprocessor` or `ImageConverter`.
        trainable: fine-tune the backbone (False: a frozen feature extractor).

    Build one with `KerasHubFeatures.from_preset(handle)`; the task models'
    `from_preset` accept KerasHub handles and folders too.

    Example (a tiny random BERT; a real one comes by name or handle):

    >>> import keras_hub, numpy as np, tfxfer
    >>> words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "orbit", "faith"]
    >>> source = tfxfer.KerasHubFeatures(
    ...     keras_hub.models.BertBackbone(vocabulary_size=7, num_layers=1, num_heads=1, hidden_dim=8,
    ...                                   intermediate_dim=16, max_sequence_length=8),
    ...     keras_hub.models.BertTextClassifierPreprocessor(keras_hub.models.BertTokenizer(vocabulary=words),
    ...                                                     sequence_length=8))
    >>> list(source.block_groups)
    ['embeddings', 'transformer_layer_0', 'pooler']
    >>> model = tfxfer.TextClassifier(source, num_classes=2)
    >>> model.predict(np.array(["orbit", "faith"], dtype=object), verbose=0).shape
    (2, 2)
    """

    def __init__(self, backbone, preprocessing, trainable=False, **kwargs):
        super().__init__(trainable=trainable, **kwargs)
        self.backbone = backbone
        self.preprocessing = preprocessing
        self.is_text = _is_text(backbone)
        self.module_input_shape = () if self.is_text else (None, None, 3)
        self.module_dtype = "string" if self.is_text else "float32"

    @classmethod
    def from_preset(cls, preset, kind="text", trainable=False, sequence_length=None, image_size=None, **kwargs):
        """The source of a KerasHub preset: a name KerasHub knows (of
        `kind`, `"text"` or `"image"`), a `kaggle://` or `hf://` handle, or a
        local preset folder. A `kaggle://` handle or a name is read from
        KaggleHub's cache folder when it is there, with no network.
        `sequence_length` (text) and `image_size` (images) override the
        preset's."""
        backbone, preprocessing = load_preset(local_preset(preset, kind=kind))
        if sequence_length is not None:
            preprocessing.sequence_length = int(sequence_length)
        if image_size is not None:
            preprocessing.image_size = (int(image_size), int(image_size))
        return cls(backbone, preprocessing, trainable=trainable, **kwargs)

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs, training=False):
        if not self.is_text:
            inputs = keras.ops.cast(inputs, "float32")
        outputs = self.backbone(self.preprocessing(inputs), training=training and self.trainable)
        if isinstance(outputs, dict):
            if "pooled_output" in outputs:
                return outputs["pooled_output"]
            outputs = outputs["sequence_output"]
        if len(outputs.shape) == 4:
            return keras.ops.mean(outputs, axis=(1, 2))
        if len(outputs.shape) == 3:  # token or patch vectors: the first ([CLS])
            return outputs[:, 0, :]
        return outputs

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.feature_dim)

    @property
    def feature_dim(self):
        backbone = self.backbone
        for name in ("hidden_dim", "embedding_dim"):
            if getattr(backbone, name, None):
                return int(getattr(backbone, name))
        output = backbone.output
        output = output.get("pooled_output", output.get("sequence_output")) if isinstance(output, dict) else output
        return int(output.shape[-1])

    @property
    def block_groups(self):
        """The backbone's layers with weights in groups, bottom to top."""
        bottom, top = ("embeddings", "pooler") if self.is_text else ("stem", "top")
        groups = collections.OrderedDict()
        seen_block = False
        for layer in self.backbone.layers:
            if not layer.weights:
                continue
            match = _BLOCK.match(layer.name)
            seen_block = seen_block or bool(match)
            name = match.group(1) if match else (top if seen_block else bottom)
            groups.setdefault(name, []).append(layer)
        return groups

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "preprocessing": keras.saving.serialize_keras_object(self.preprocessing),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        _keras_hub()  # registers KerasHub's classes for deserialization
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["preprocessing"] = keras.saving.deserialize_keras_object(config["preprocessing"])
        return cls(**config)
