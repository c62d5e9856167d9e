"""`HybridTextFeatures`: TF-IDF of every 1-2 gram beside a sentence encoder.

A sentence encoder knows what texts mean; TF-IDF knows which rare words a
corpus turns on (names, part numbers, jargon no pretraining saw). Side by
side, a linear head uses both: on 20 Newsgroups (headers removed, a
LinearSVC on frozen all-MiniLM-L6-v2 features) 57.0 % at 10 labels per
class for the encoder alone, 39.0 for TF-IDF, 60.5 for both; 66.5 / 57.5 /
69.7 at 50 (`benchmarks/sentence_encoders.py` has the full runs).

The features are sparse (one column per 1-2 gram, then the encoder's
vector at `vector_weight` beside the unit-length TF-IDF), as the word-vector
hybrid's are. The two parts are cached apart (`feature_parts`): the
encoder's per text, as it costs; the TF-IDF whole, as it does not.
"""

import keras
import scipy.sparse
import tensorflow as tf

from tfxfer.sources.text_encoding import sparse_side_by_side, tfidf_features_layers

VECTOR_WEIGHT = 0.5


@keras.saving.register_keras_serializable(package="tfxfer")
class HybridTextFeatures(keras.layers.Layer):
    """Raw strings -> `[TF-IDF | vector_weight * unit-length encoder vector]`, sparse.

    Args:
        encoder: a layer from strings to one vector per text (a
            `KerasHubFeatures` sentence encoder).
        counter, weighting: the TF-IDF: a sparse count `TextVectorization`
            of 1-2 grams and its `SublinearTfIdf` (`tfidf_features_layers`).
        vector_weight: the length of the encoder's vector beside the
            unit-length TF-IDF.

    Build one with `HybridTextFeatures.adapted(encoder, texts)`.
    """

    def __init__(self, encoder, counter, weighting, vector_weight=VECTOR_WEIGHT, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.counter, self.weighting = encoder, counter, weighting
        self.vector_weight = float(vector_weight)
        self.tfidf = keras.Sequential([counter, weighting], name="tfidf_features")
        self.module_input_shape, self.module_dtype = (), "string"

    @classmethod
    def adapted(cls, encoder, texts, vector_weight=VECTOR_WEIGHT, num_terms="all"):
        """The hybrid of `encoder` and a TF-IDF of `texts`' 1-2 grams (all of
        them, or the `num_terms` most frequent)."""
        counter, weighting = tfidf_features_layers(texts, num_terms)
        return cls(encoder, counter, weighting, vector_weight, name="hybrid_features")

    @property
    def fine_tunes_by_default(self):
        return False  # the TF-IDF is fixed and its head solved; the encoder is used frozen

    @property
    def block_groups(self):
        """The encoder's groups: the TF-IDF has nothing to fine-tune."""
        return self.encoder.block_groups

    @property
    def feature_parts(self):
        """The layers whose outputs `join_features` puts side by side (each cached on its own)."""
        return [self.tfidf, self.encoder]

    def join_features(self, tfidf, vectors):
        """The hybrid's features from its parts' (as `call` computes them)."""
        vectors = keras.ops.convert_to_numpy(vectors).astype("float32")
        norms = (vectors**2).sum(axis=1, keepdims=True) ** 0.5
        vectors = self.vector_weight * vectors / (norms + (norms == 0))
        return scipy.sparse.hstack([scipy.sparse.csr_matrix(tfidf), vectors], format="csr", dtype="float32")

    def build(self, input_shape=None):
        self.built = True

    def call(self, strings, training=False):
        vectors = tf.cast(self.encoder(strings, training=training), self.compute_dtype)
        vectors = self.vector_weight * tf.math.l2_normalize(vectors, axis=-1)
        return sparse_side_by_side([self.tfidf(strings), tf.sparse.from_dense(vectors)])

    @property
    def feature_dim(self):
        return self.weighting.num_terms + self.encoder.feature_dim

    def compute_output_spec(self, strings, training=False):
        return keras.KerasTensor((strings.shape[0], self.feature_dim), self.compute_dtype, sparse=True)

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "counter": keras.saving.serialize_keras_object(self.counter),
            "weighting": keras.saving.serialize_keras_object(self.weighting),
            "vector_weight": self.vector_weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("encoder", "counter", "weighting"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)
