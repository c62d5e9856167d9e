"""A text source from word vectors: raw strings -> token ids -> vectors.

`text_encoder()` adapts a `TextVectorization` on the training texts, lines
pretrained vectors up with its vocabulary (`WordVectors.embedding`) or
starts from random ones, and, for `"mean"`/`"max"`, pools over the real
tokens (padding masked). Pooling has no weights, so it belongs to the
source: a frozen encoder's output is then one vector per text, which is
what the feature cache stores. `"sequence"` returns the token vectors (with
all-zero padding rows) for a head that reads order, such as a Conv1D.
"""

import keras
import numpy as np

POOLINGS = ("mean", "max", "sequence")


@keras.saving.register_keras_serializable(package="tfxfer")
class MaskedPooling1D(keras.layers.Layer):
    """Mean or max over the time steps that the mask keeps.

    A text with no known token (all padding) pools to zeros.
    """

    def __init__(self, mode="mean", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("mean", "max"):
            raise ValueError(f"mode must be 'mean' or 'max'. Received: mode={mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs, mask=None):
        ops = keras.ops
        if mask is None:
            mask = ops.ones(ops.shape(inputs)[:2], dtype="bool")
        keep = ops.cast(ops.expand_dims(mask, -1), inputs.dtype)
        if self.mode == "mean":
            return ops.sum(inputs * keep, axis=1) / ops.maximum(ops.sum(keep, axis=1), 1.0)
        lowest = ops.min(inputs) - 1.0  # below every real value
        pooled = ops.max(ops.where(keep > 0, inputs, lowest), axis=1)
        return ops.where(ops.sum(keep, axis=1) > 0, pooled, ops.zeros_like(pooled))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def text_vectorizer(texts, max_tokens=20000, sequence_length=256):
    """A `TextVectorization` (lower case, punctuation stripped) adapted on `texts`."""
    vectorizer = keras.layers.TextVectorization(
        max_tokens=max_tokens, output_sequence_length=sequence_length, name="vectorizer"
    )
    vectorizer.adapt(as_text_array(texts), batch_size=1024)
    return vectorizer


def as_text_array(texts):
    """Texts as a 1-D numpy object array, the form Keras feeds as tf.string."""
    array = np.asarray(list(texts) if not isinstance(texts, np.ndarray) else texts, dtype=object)
    if array.ndim != 1:
        raise ValueError(f"Expected a flat list of strings, one per document. Received: shape {array.shape}")
    bad = next((i for i, t in enumerate(array) if not isinstance(t, str | bytes)), None)
    if bad is not None:
        raise TypeError(f"Document {bad} is a {type(array[bad]).__name__}, not a string.")
    return array


def as_model_inputs(x):
    """Texts (a list of str, or a numpy str array) as an object array; anything
    else (image arrays, object arrays, tensors, datasets) unchanged."""
    if isinstance(x, np.ndarray) and x.dtype.kind in "USO":  # object arrays: each checked to be a string
        return as_text_array(x)
    if isinstance(x, list | tuple) and len(x) and isinstance(x[0], str | bytes):
        return as_text_array(x)  # not np.asarray: a str array pads every text to the longest
    return x


def text_encoder(
    texts, word_vectors=None, dim=None, pooling="mean", max_tokens=20000, sequence_length=256, trainable=None, seed=0
):
    """A Keras model from raw strings to text features.

    Args:
        texts: the training texts the vocabulary is adapted on.
        word_vectors: a `WordVectors`, or None to learn the vectors from
            scratch (then `dim` is required and the embedding is trainable).
        pooling: `"mean"`, `"max"` (one vector per text) or `"sequence"`.
        trainable: whether the embedding trains; default: only from scratch.

    Returns:
        A functional model named `"text_encoder"` whose one weighted layer,
        `"word_embedding"`, is the block group `fine_tune` unfreezes.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}. Received: pooling={pooling!r}")
    vectorizer = text_vectorizer(texts, max_tokens, sequence_length)
    if word_vectors is None:
        if not dim:
            raise ValueError("Without word_vectors, pass dim=... for the embedding learned from scratch.")
        keras.utils.set_random_seed(seed)
        embedding = keras.layers.Embedding(
            vectorizer.vocabulary_size(), dim, mask_zero=True, trainable=trainable is not False, name="word_embedding"
        )
    else:
        embedding = word_vectors.embedding(vectorizer, trainable=bool(trainable), mask_zero=True, seed=seed)
    strings = keras.Input((), dtype="string", name="texts")
    vectors = embedding(vectorizer(strings))
    if pooling != "sequence":
        vectors = MaskedPooling1D(pooling, name=f"{pooling}_pooling")(vectors)
    return keras.Model(strings, vectors, name="text_encoder")
