"""`TextClassifier`: raw strings, a pretrained text source, a head."""

import keras

from tfxfer.sources.hub import HubFeatures
from tfxfer.sources.registry import text_source
from tfxfer.sources.text_encoding import as_model_inputs, text_encoder
from tfxfer.sources.word_vectors import WordVectors
from tfxfer.tasks.task import Task

TEXT_ENCODERS = ("vectors", "hybrid")


@keras.saving.register_keras_serializable(package="tfxfer")
class TextClassifier(Task):
    """A text source (`text_encoder`, a `HubFeatures` text module, or any Keras
    model taking strings) and a head, on raw strings.

    A source that returns one vector per text gets feature standardisation
    (`feature_scaling`, adapted by `fit_head` and `fine_tune`; off for a
    source whose features are already scaled, such as the hybrid encoder),
    dropout and a dense layer;
    one that returns token vectors `(batch, steps, dim)` gets a small Conv1D
    (`conv_filters`, width 5, ReLU) and max pooling first. Logits are float32.
    `l2_sp` and `head_l2` as for `ImageClassifier`.

    Example:

    >>> import numpy as np, tfxfer
    >>> texts = ["the rocket reached orbit", "god and faith", "a launch to orbit", "faith in god"]
    >>> model = tfxfer.TextClassifier.from_word_vectors(None, texts, num_classes=2, dim=8)
    >>> model.compile()
    >>> model.predict(np.array(["orbit of faith"], dtype=object), verbose=0).shape
    (1, 2)
    """

    def __init__(
        self,
        backbone,
        num_classes,
        dropout=0.2,
        conv_filters=128,
        l2_sp=None,
        head_l2=None,
        feature_scaling=True,
        **kwargs,
    ):
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2. Received: num_classes={num_classes}")

        # === Layers ===
        self.backbone = backbone
        strings = keras.Input((), dtype="string", name="texts")
        features = backbone(strings)
        features = self._anchored(features, l2_sp)
        self.conv = self.sequence_pooling = self.feature_scaling = None
        if len(features.shape) == 2:
            self.feature_scaling = self._scaling_layer() if feature_scaling else None
        elif len(features.shape) == 3:
            self.conv = keras.layers.Conv1D(conv_filters, 5, padding="same", activation="relu", name="conv")
            self.sequence_pooling = keras.layers.GlobalMaxPooling1D(name="sequence_pooling")
        elif len(features.shape) != 2:
            raise ValueError(
                f"The text source returns shape {features.shape}; expected (batch, dim) or (batch, steps, dim)."
            )
        self.head_dropout = keras.layers.Dropout(dropout, name="head_dropout")
        self.head = self._logits_layer(num_classes, head_l2)

        # === Functional Model ===
        if self.conv is not None:
            features = self.sequence_pooling(self.conv(features))
        elif self.feature_scaling is not None:
            features = self.feature_scaling(features)
        logits = self.head(self.head_dropout(features))
        super().__init__(strings, logits, **kwargs)

        # === Config ===
        self._keep_config(num_classes, dropout, l2_sp, head_l2)
        self.conv_filters, self.scales_features = conv_filters, bool(feature_scaling)

    @classmethod
    def from_word_vectors(
        cls,
        word_vectors,
        texts,
        num_classes,
        encoder="vectors",
        pooling="mean",
        dim=None,
        max_tokens=20000,
        sequence_length=256,
        trainable=None,
        dropout=0.2,
        seed=0,
    ):
        """A classifier on word vectors, its vocabulary adapted on `texts`.

        Args:
            word_vectors: a `WordVectors`, a path for `WordVectors.load`, or
                None to learn the embedding from scratch (pass `dim`).
            encoder: `"vectors"` (pooled word vectors, standardised before
                the head) or `"hybrid"` (TF-IDF of 1-2 grams beside the
                pooled vectors, `max_tokens` terms: every word counts, with a
                vector or not).
            pooling: `"mean"`, `"max"` or `"sequence"` (a Conv1D head).
            trainable: train the embedding; by default only from scratch.
            Other arguments: see `text_encoder`.
        """
        if encoder not in TEXT_ENCODERS:
            raise ValueError(f"encoder must be one of {TEXT_ENCODERS}. Received: encoder={encoder!r}")
        if word_vectors is not None and not isinstance(word_vectors, WordVectors):
            word_vectors = WordVectors.load(word_vectors)
        hybrid = encoder == "hybrid"
        source = text_encoder(
            texts,
            word_vectors,
            dim,
            pooling,
            max_tokens,
            sequence_length,
            trainable,
            seed,
            tfidf_features=max_tokens if hybrid else 0,
        )
        return cls(source, num_classes, dropout=dropout, feature_scaling=not hybrid)

    @classmethod
    def from_preset(cls, preset, num_classes, texts=None, dropout=0.2, seed=0, **encoder_kwargs):
        """A classifier on a named text source.

        Args:
            preset: a name from `tfxfer.presets("text")` (`"wiki_news_w2v"`,
                alias `"embedded"`), a word-vector file (word2vec, GloVe,
                fastText), a TF-Hub text module handle or a SavedModel folder
                taking strings.
            texts: the training texts the vocabulary is adapted on (word
                vectors only; unlabelled texts are welcome).
            encoder_kwargs: `encoder`, `pooling`, `max_tokens`,
                `sequence_length`, `trainable` for word vectors (see
                `from_word_vectors`).
        """
        kind, where = text_source(preset)
        if kind == "module":
            return cls(HubFeatures(where, input_dtype="string"), num_classes, dropout=dropout)
        if texts is None:
            raise ValueError(
                f"The text source {preset!r} is word vectors: pass texts=... (the training texts, labelled or not) "
                "so that the vocabulary can be adapted on them."
            )
        return cls.from_word_vectors(where, texts, num_classes, dropout=dropout, seed=seed, **encoder_kwargs)

    def fine_tuning_rates(self):
        # Word vectors are a lookup table, not a deep stack: each row moves
        # only in the steps where its word occurs, so at a tenth of a 1e-3
        # rate they barely change. They train at the head's rate, 1e-2, the
        # rate that trains the same model from scratch (20 Newsgroups, all
        # labels: 40% -> 70% test accuracy with the shipped vectors).
        if any(layer.name == "word_embedding" for layer in getattr(self.backbone, "layers", [])):
            return 1e-2, 1.0
        return super().fine_tuning_rates()

    def prepare_inputs(self, x):
        # Keras turns a list of str into a numpy str array, which it cannot
        # feed as tf.string; an object array it can. Accept both forms users have.
        return as_model_inputs(x)

    @property
    def head_layers(self):
        start = [self.conv, self.sequence_pooling] if self.conv is not None else [self.feature_scaling]
        return [*(layer for layer in start if layer is not None), self.head_dropout, self.head]

    def get_config(self):
        return {**super().get_config(), "conv_filters": self.conv_filters, "feature_scaling": self.scales_features}
