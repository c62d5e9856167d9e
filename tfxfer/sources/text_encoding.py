"""A text source from word vectors: raw strings -> token ids -> vectors.

`text_encoder()` adapts a `TextVectorization` on the training texts, lines
pretrained vectors up with its vocabulary (`WordVectors.embedding`) or
starts from random ones, and, for `"mean"`/`"max"`, pools over the real
tokens (padding masked). Pooling has no weights, so it belongs to the
source: a frozen encoder's output is then one vector per text, which is
what the feature cache stores. `"sequence"` returns the token vectors (with
all-zero padding rows) for a head that reads order, such as a Conv1D.

With `tfidf_features`, the encoder is a sparse + dense hybrid: TF-IDF of
1-2 grams (sublinear term frequency, as scikit-learn's
`TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)`), computed in the
graph so that an export still takes raw strings, beside the pooled word
vectors, each part scaled to unit length. Words the vectors miss, and word
pairs, still count.
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


@keras.saving.register_keras_serializable(package="tfxfer")
class SublinearTfIdf(keras.layers.Layer):
    """Term counts -> `(1 + log count) * idf`, scaled to unit length.

    `idf` (one weight per term, not trained) is set by `adapt` from the
    counts of a corpus: `log((1 + n) / (1 + df)) + 1`, scikit-learn's
    smoothed idf. Index 0, `TextVectorization`'s out-of-vocabulary count, weighs 0.
    """

    def __init__(self, num_terms, **kwargs):
        super().__init__(**kwargs)
        self.num_terms = int(num_terms)
        self.idf = self.add_weight(shape=(self.num_terms,), initializer="ones", trainable=False, name="idf")

    def adapt(self, counts):
        """Sets `idf` from `counts`, an iterable of `(batch, num_terms)` count arrays."""
        documents, frequency = 0, np.zeros(self.num_terms, dtype=np.float64)
        for batch in counts:
            batch = np.asarray(batch)
            documents += len(batch)
            frequency += (batch > 0).sum(axis=0)
        idf = np.log((1.0 + documents) / (1.0 + frequency)) + 1.0
        idf[0] = 0.0
        self.idf.assign(idf.astype("float32"))

    def call(self, counts):
        ops = keras.ops
        counts = ops.cast(counts, self.compute_dtype)
        weighted = ops.where(counts > 0, 1.0 + ops.log(ops.maximum(counts, 1.0)), 0.0) * self.idf
        return weighted / ops.maximum(ops.sqrt(ops.sum(weighted * weighted, axis=-1, keepdims=True)), 1e-12)

    def get_config(self):
        return {**super().get_config(), "num_terms": self.num_terms}


def tfidf_features_layers(texts, num_terms=20000):
    """`(counter, weighting)`: a `TextVectorization` counting the `num_terms`
    most frequent 1-2 grams of `texts`, and the `SublinearTfIdf` adapted on
    its counts; `weighting(counter(strings))` is the TF-IDF."""
    texts = as_text_array(texts)
    counter = keras.layers.TextVectorization(max_tokens=num_terms, ngrams=2, output_mode="count", name="term_counts")
    counter.adapt(texts, batch_size=1024)
    weighting = SublinearTfIdf(counter.vocabulary_size(), name="tfidf")
    weighting.adapt(counter(texts[start : start + 1024]) for start in range(0, len(texts), 1024))
    return counter, weighting


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
    texts,
    word_vectors=None,
    dim=None,
    pooling="mean",
    max_tokens=20000,
    sequence_length=256,
    trainable=None,
    seed=0,
    tfidf_features=0,
):
    """A Keras model from raw strings to text features.

    Args:
        texts: the training texts the vocabulary is adapted on.
        word_vectors: a `WordVectors`, or None to learn the vectors from
            scratch (then `dim` is required and the embedding is trainable).
        pooling: `"mean"`, `"max"` (one vector per text) or `"sequence"`.
        trainable: whether the embedding trains; default: only from scratch.
        tfidf_features: with a number of terms (20000 is a good start),
            the hybrid encoder: TF-IDF of the most frequent 1-2 grams in
            `texts`, concatenated with the pooled vectors (`"mean"` or `"max"`).

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
    if tfidf_features:
        if pooling == "sequence":
            raise ValueError("The hybrid encoder (tfidf_features) pools the vectors: pass pooling='mean' or 'max'.")
        counter, weighting = tfidf_features_layers(texts, tfidf_features)
        unit_vectors = keras.layers.UnitNormalization(name="vector_scaling")(vectors)
        vectors = keras.layers.Concatenate(name="hybrid")([weighting(counter(strings)), unit_vectors])
    return keras.Model(strings, vectors, name="text_encoder")
