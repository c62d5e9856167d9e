"""`KerasHubFeatures`: a KerasHub preset (backbone and its preprocessing) as a source.

KerasHub is the Keras 3 successor of TF-Hub: a preset is a folder (or a
`kaggle://` / `hf://` handle, or a name KerasHub knows) holding a backbone's
config and weights beside its preprocessing: an image converter (resize,
rescale) or a tokenizer and packer. This layer holds both, so a model on it
takes raw images or raw strings, trains, saves to `.keras` and exports as
any other tfxfer source; its output is one vector per input (pooled
feature map, `pooled_output`, the first token's vector, or the tokens'
mean or maximum where a sentence encoder declares it).

A local Hugging Face or sentence-transformers folder of a BERT-family
encoder is read the same way (`encoder_folders`): KerasHub converts it, and
its declared pooling, normalisation and sequence length apply.
"""

import collections
import contextlib
import functools
import json
import os
import re

import keras
import numpy as np

from tfxfer.sources import encoder_folders
from tfxfer.validation import check_choice

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
    """A `kaggle://`, `hf://` handle, or a local folder in KerasHub's preset
    layout or in the Hugging Face layout (which KerasHub converts)."""
    handle = os.path.expanduser(os.fspath(handle))
    return handle.startswith(HANDLE_SCHEMES) or is_preset_folder(handle) or encoder_folders.is_encoder_folder(handle)


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
    if encoder_folders.is_encoder_folder(preset):
        return encoder_folders.preset_folder(preset)
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
    if encoder_folders.is_encoder_folder(preset):
        return ValueError(
            f"KerasHub could not convert the Hugging Face folder '{preset}' ({type(error).__name__}: "
            f"{str(error)[:200]}): it converts {', '.join(encoder_folders.ENCODER_TYPES)} text encoders saved with "
            "their config.json, model.safetensors and tokenizer files."
        )
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


def _declared_text_options(preset, folder):
    """`pooling`, `normalize` and `sequence_length` a text encoder's folder
    declares: a Hugging Face / sentence-transformers folder (`preset`), or
    a KerasHub preset folder holding a text embedder's `task.json`."""
    preset = os.path.expanduser(os.fspath(preset))
    if encoder_folders.is_encoder_folder(preset):
        pooling, normalize = encoder_folders.declared_pooling(preset)
        options = {"pooling": pooling or "mean", "normalize": normalize}
        length = encoder_folders.declared_sequence_length(preset)
        return {**options, "sequence_length": length} if length else options
    task = os.path.join(folder, "task.json") if os.path.isdir(folder) else None
    if task is None or not os.path.isfile(task):
        return {}
    with open(task, encoding="utf-8") as file:
        config = json.load(file).get("config", {})
    if "pooling_mode" not in config:
        return {}
    return {"pooling": config["pooling_mode"], "normalize": bool(config.get("normalize", False))}


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
        pooling: text only: None (`pooled_output`, else the first token),
            or `"mean"` / `"max"` of the tokens the padding mask keeps, or
            `"cls"` (the first token), as a sentence encoder declares it.
        normalize: text only: divide each vector by its L2 norm.

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

    cache_per_text = True  # costly per text: the feature cache reuses each text's features across splits
    extract_in_graph = True  # the feature cache compiles its calls: twice the texts per second of eager calls

    def __init__(self, backbone, preprocessing, trainable=False, pooling=None, normalize=False, **kwargs):
        super().__init__(trainable=trainable, **kwargs)
        if pooling is not None:
            check_choice("pooling", pooling, encoder_folders.POOLINGS)
        self.backbone = backbone
        self.preprocessing = preprocessing
        self.pooling, self.normalize = pooling, bool(normalize)
        self.is_text = _is_text(backbone)
        if not self.is_text and (pooling is not None or normalize):
            raise ValueError("pooling= and normalize= apply to text encoders; an image backbone is pooled by average.")
        self.module_input_shape = () if self.is_text else (None, None, 3)
        self.module_dtype = "string" if self.is_text else "float32"

    @classmethod
    def from_preset(cls, preset, kind="text", trainable=False, sequence_length=None, image_size=None, **kwargs):
        """The source of a KerasHub preset: a name KerasHub knows (of
        `kind`, `"text"` or `"image"`), a `kaggle://` or `hf://` handle, or a
        local preset folder. A `kaggle://` handle or a name is read from
        KaggleHub's cache folder when it is there, with no network.
        `sequence_length` (text) and `image_size` (images) override the
        preset's. A Hugging Face or sentence-transformers folder brings its
        declared pooling (mean where it declares none), normalisation and
        sequence length (`max_seq_length`); a KerasHub text embedder preset
        its `pooling_mode` and `normalize`."""
        folder = local_preset(preset, kind=kind)
        backbone, preprocessing = load_preset(folder)
        declared = _declared_text_options(preset, folder) if _is_text(backbone) else {}
        declared_length = declared.pop("sequence_length", None)
        sequence_length = sequence_length or declared_length
        kwargs = {**declared, **kwargs}
        limit = getattr(backbone, "max_sequence_length", None)
        if sequence_length is not None and limit and int(sequence_length) > limit:
            raise ValueError(
                f"sequence_length={sequence_length} is longer than the {limit} positions '{preset}' has: "
                f"pass --sequence-length {limit} or less."
            )
        if sequence_length is None and limit and getattr(preprocessing, "sequence_length", 0) > limit:
            sequence_length = limit  # the preprocessor's own default may exceed the encoder's positions
        if sequence_length is not None:
            preprocessing.sequence_length = int(sequence_length)
        if image_size is not None:
            preprocessing.image_size = (int(image_size), int(image_size))
        return cls(backbone, preprocessing, trainable=trainable, **kwargs)

    @property
    def fine_tunes_by_default(self):
        # A sentence encoder (a declared pooling) is trained to be used
        # frozen: its head is solved on cached features, as SetFit's baseline.
        return self.pooling is None

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs, training=False):
        if not self.is_text:
            inputs = keras.ops.cast(inputs, "float32")
        tokens = self.preprocessing(inputs)
        outputs = self.backbone(tokens, training=training and self.trainable)
        if self.is_text and self.pooling is not None:
            return self._pooled(outputs["sequence_output"], tokens["padding_mask"])
        if isinstance(outputs, dict):
            if "pooled_output" in outputs:
                return outputs["pooled_output"]
            outputs = outputs["sequence_output"]
        if len(outputs.shape) == 4:
            return keras.ops.mean(outputs, axis=(1, 2))
        if len(outputs.shape) == 3:  # token or patch vectors: the first ([CLS])
            return outputs[:, 0, :]
        return outputs

    def _pooled(self, tokens, padding_mask):
        """The declared pooling of the token vectors the padding mask keeps, L2-normalised if declared."""
        if self.pooling == "cls":
            pooled = tokens[:, 0, :]
        else:
            mask = keras.ops.expand_dims(keras.ops.cast(padding_mask, tokens.dtype), -1)
            if self.pooling == "mean":
                pooled = keras.ops.sum(tokens * mask, axis=1) / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)
            else:  # max: padding can never win
                pooled = keras.ops.max(keras.ops.where(mask > 0, tokens, -1e9), axis=1)
        if self.normalize:
            pooled = pooled / keras.ops.maximum(keras.ops.norm(pooled, axis=-1, keepdims=True), 1e-12)
        return pooled

    def token_lengths(self, texts):
        """Each text's length in the encoder's tokens, `[CLS]` and `[SEP]`
        included, before any cut (None for an image backbone)."""
        tokenizer = getattr(self.preprocessing, "tokenizer", None)
        if not self.is_text or tokenizer is None:
            return None
        if not len(texts):
            return np.zeros(0, dtype=int)
        return np.array([len(ids) for ids in tokenizer(list(texts))]) + 2  # lists of ids for a list of texts

    def truncated_share(self, texts, lengths=None):
        """The share of `texts` longer than the tokens the encoder reads
        (`preprocessing.sequence_length`): cut. `lengths`: their
        `token_lengths`, when known."""
        lengths = self.token_lengths(texts) if lengths is None else lengths
        if lengths is None or not len(lengths):
            return 0.0
        return float(np.mean(lengths > self.preprocessing.sequence_length))

    def length_batches(self, lengths, batch_size, step=32):
        """`(indices, sequence_length)` batches of texts by their
        `token_lengths`, shortest first, each padded only to its longest
        text (rounded up to `step`, at most the encoder's own length), as
        sentence-transformers pads: the pooled vectors are those of the full
        length (the padding is masked) for a fraction of the work on short
        texts (20 Newsgroups: 150 tokens a post on average instead of 256)."""
        full = self.preprocessing.sequence_length
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            yield indices, int(min(full, -(-int(lengths[indices].max()) // step) * step))

    @contextlib.contextmanager
    def reading(self, sequence_length):
        """Within it, the preprocessing packs texts to `sequence_length` tokens."""
        own = self.preprocessing.sequence_length
        self.preprocessing.sequence_length = int(sequence_length)
        try:
            yield self
        finally:
            self.preprocessing.sequence_length = own

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
            "pooling": self.pooling,
            "normalize": self.normalize,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        _keras_hub()  # registers KerasHub's classes for deserialization
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["preprocessing"] = keras.saving.deserialize_keras_object(config["preprocessing"])
        return cls(**config)
