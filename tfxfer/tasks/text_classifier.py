"""`TextClassifier`: raw strings, a pretrained text source, a head."""

import keras

from tfxfer.choices import TEXT_ENCODERS
from tfxfer.data.texts import as_model_inputs
from tfxfer.sources.hub import HubFeatures
from tfxfer.sources.hybrid import HybridTextFeatures
from tfxfer.sources.kerashub import KerasHubFeatures
from tfxfer.sources.resolve import resolve
from tfxfer.sources.text_encoding import text_encoder
from tfxfer.sources.word_vectors import WordVectors
from tfxfer.tasks.labels import ClassLabels
from tfxfer.tasks.task import Task
from tfxfer.validation import check_choice
from tfxfer.walk import walk_layers

SEQUENCE_HEADS = ("conv", "rnn")


@keras.saving.register_keras_serializable(package="tfxfer")
class TextClassifier(Task):
    """A text source (`text_encoder`, a `HubFeatures` text module, or any Keras
    model taking strings) and a head, on raw strings.

    A source that returns one vector per text gets feature standardisation
    (`feature_scaling`, adapted by `fit_head` and `fine_tune`; off for a
    source whose features are already scaled, such as the hybrid encoder),
    dropout and a dense layer;
    one that returns token vectors `(batch, steps, dim)` gets first, by
    `sequence_head`, a small Conv1D (`conv_filters`, width 5, ReLU) and max
    pooling, or a bidirectional GRU (`rnn_units` each way) that skips the
    padding (all-zero rows, masked). Logits are float32.
    `l2_sp`, `head_l2`, `class_names`, `multi_label` and `thresholds` as
    for `ImageClassifier`.

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
        sequence_head="conv",
        rnn_units=64,
        *,
        class_names=None,
        multi_label=False,
        thresholds=None,
        **kwargs,
    ):
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2. Received: num_classes={num_classes}")
        class_labels = ClassLabels.of(num_classes, class_names, multi_label, thresholds)
        check_choice("sequence_head", sequence_head, SEQUENCE_HEADS)

        # === Layers ===
        self.backbone = backbone
        strings = keras.Input((), dtype="string", name="texts")
        features = backbone(strings)
        features = self._anchored(features, l2_sp)
        if getattr(features, "sparse", False) or _sparse_outputs(backbone):  # a TF-IDF: dropout would densify it
            dropout = 0.0
        self.sequence_layers, self.feature_scaling = [], None
        if len(features.shape) == 2:
            self.feature_scaling = self._scaling_layer() if feature_scaling else None
        elif len(features.shape) == 3 and sequence_head == "conv":
            self.sequence_layers = [
                keras.layers.Conv1D(conv_filters, 5, padding="same", activation="relu", name="conv"),
                keras.layers.GlobalMaxPooling1D(name="sequence_pooling"),
            ]
        elif len(features.shape) == 3:  # the mask from the zero rows: cached features carry none
            self.sequence_layers = [
                keras.layers.Masking(0.0, name="padding_mask"),
                keras.layers.Bidirectional(keras.layers.GRU(rnn_units, name="gru"), name="bidirectional_gru"),
            ]
        elif len(features.shape) != 2:
            raise ValueError(
                f"The text source returns shape {features.shape}; expected (batch, dim) or (batch, steps, dim)."
            )
        self.head_dropout = keras.layers.Dropout(dropout, name="head_dropout")
        self.head = self._logits_layer(num_classes, head_l2)

        # === Functional Model ===
        for layer in self.sequence_layers:
            features = layer(features)
        if self.feature_scaling is not None:
            features = self.feature_scaling(features)
        logits = self.head(self.head_dropout(features))
        super().__init__(strings, logits, **kwargs)

        # === Config ===
        self._keep_config(num_classes, dropout, l2_sp, head_l2, class_labels)
        self.conv_filters, self.scales_features = conv_filters, bool(feature_scaling)
        self.sequence_head, self.rnn_units = sequence_head, rnn_units
        self._compile_defaults()

    @classmethod
    def from_word_vectors(
        cls,
        word_vectors,
        texts,
        num_classes,
        *,
        encoder="vectors",
        pooling="mean",
        dropout=0.2,
        class_names=None,
        multi_label=False,
        **encoder_options,
    ):
        """A classifier on word vectors, its vocabulary adapted on `texts`.

        Args:
            word_vectors: a `WordVectors`, a path for `WordVectors.load`, or
                None to learn the embedding from scratch (pass `dim`).
            encoder: `"vectors"` (pooled word vectors, standardised before
                the head) or `"hybrid"` (TF-IDF of every 1-2 gram of `texts`
                beside the pooled vectors: every word counts, with a vector
                or not; `max_tokens` bounds the vectors' vocabulary only) or
                `"rnn"` (the token vectors read by a bidirectional GRU head).
            pooling: `"mean"`, `"max"` or `"sequence"` (a Conv1D head).
            class_names, multi_label: as the constructor takes them.
            encoder_options: for `text_encoder`: `dim`, `max_tokens`,
                `sequence_length`, `trainable` (by default only from
                scratch), `seed`, `vector_weight`.
        """
        check_choice("encoder", encoder, TEXT_ENCODERS)
        if word_vectors is not None and not isinstance(word_vectors, WordVectors):
            word_vectors = WordVectors.load(word_vectors)
        hybrid = encoder == "hybrid"
        source = text_encoder(
            texts,
            word_vectors,
            pooling="sequence" if encoder == "rnn" else pooling,
            tfidf_features="all" if hybrid else 0,
            **encoder_options,
        )
        head = "rnn" if encoder == "rnn" else "conv"
        labels = {"class_names": class_names, "multi_label": multi_label}
        return cls(source, num_classes, dropout=dropout, feature_scaling=not hybrid, sequence_head=head, **labels)

    @classmethod
    def from_preset(
        cls, preset, num_classes, texts=None, dropout=0.2, seed=0, class_names=None, multi_label=False, **encoder_kwargs
    ):
        """A classifier on a named text source.

        Args:
            preset: a name from `tfxfer.presets("text")` (`"wiki_news_w2v"`,
                alias `"embedded"`), a word-vector file (word2vec, GloVe,
                fastText), a KerasHub preset (a name such as
                `"bert_tiny_en_uncased"`, a `kaggle://` or `hf://` handle, a
                preset folder: its tokenizer runs inside the model), a TF-Hub
                text module handle or a SavedModel folder taking strings.
            texts: the training texts the vocabulary is adapted on (word
                vectors only; unlabelled texts are welcome).
            encoder_kwargs: `encoder`, `pooling`, `max_tokens`,
                `sequence_length`, `trainable` for word vectors (see
                `from_word_vectors`); for a KerasHub encoder (a preset, or
                a Hugging Face / sentence-transformers folder) `encoder`
                (`"vectors"`: its pooled vector alone, the default;
                `"hybrid"`: beside a TF-IDF of `texts`,
                `HybridTextFeatures`; `"auto"`, what `tfxfer fit text`
                passes: the hybrid for a sentence encoder) and
                `sequence_length`; a TF-Hub
                module is used as it is.
            class_names, multi_label: as the constructor takes them.
        """
        labels = {"class_names": class_names, "multi_label": multi_label}
        resolved = resolve(preset, "text")
        if resolved.form == "kerashub":
            return cls._on_kerashub(resolved.location, num_classes, texts, dropout, labels, **encoder_kwargs)
        if resolved.form == "module":
            if encoder_kwargs:  # its own tokenizer: word-vector options do not apply
                raise ValueError(
                    f"{sorted(encoder_kwargs)} apply to word-vector sources and KerasHub encoders; {preset!r} is a "
                    "TF-Hub text module, used as it is."
                )
            return cls(HubFeatures(resolved.location, input_dtype="string"), num_classes, dropout=dropout, **labels)
        where = resolved.location
        if texts is None:
            raise ValueError(
                f"The text source {preset!r} is word vectors: pass texts=... (the training texts, labelled or not) "
                "so that the vocabulary can be adapted on them."
            )
        return cls.from_word_vectors(where, texts, num_classes, dropout=dropout, seed=seed, **labels, **encoder_kwargs)

    @classmethod
    def _on_kerashub(cls, location, num_classes, texts, dropout, labels, encoder="vectors", **options):
        """A classifier on a KerasHub text encoder: alone (`"vectors"`), or
        beside a TF-IDF of `texts` (`"hybrid"`, `HybridTextFeatures`);
        `"auto"`: the hybrid for a sentence encoder (a declared pooling) when
        `texts` are given, else the encoder alone."""
        check_choice("encoder", encoder, ("vectors", "hybrid", "auto"))
        unknown = sorted(set(options) - {"sequence_length"})
        if unknown:
            raise ValueError(
                f"{unknown} apply to word-vector sources; a KerasHub encoder takes encoder= ('vectors' or "
                "'hybrid') and sequence_length= only."
            )
        source = KerasHubFeatures.from_preset(location, kind="text", **options)
        if encoder == "auto":
            encoder = "hybrid" if source.pooling is not None and texts is not None else "vectors"
        if encoder == "vectors":
            return cls(source, num_classes, dropout=dropout, **labels)
        if texts is None:
            raise ValueError(
                "The hybrid encoder adapts its TF-IDF on the training texts: pass texts=... (labelled or not)."
            )
        return cls(
            HybridTextFeatures.adapted(source, texts), num_classes, dropout=dropout, feature_scaling=False, **labels
        )

    def fine_tuning_rates(self):
        # Word vectors are a lookup table, not a deep stack: each row moves
        # only in the steps where its word occurs, so at a tenth of a 1e-3
        # rate they barely change. They train at the head's rate, 1e-2, the
        # rate that trains the same model from scratch (20 Newsgroups, all
        # labels: 40% -> 70% test accuracy with the shipped vectors).
        if any(layer.name == "word_embedding" for layer in getattr(self.backbone, "layers", [])):
            return 1e-2, 1.0
        return super().fine_tuning_rates()

    @property
    def fine_tunes_by_default(self):
        # The hybrid encoder's features are mostly a fixed TF-IDF, whose head
        # is solved exactly: the CLI stops after the head. (Fine-tuning it
        # "never raised the validation accuracy" was measured while
        # `tf.sparse.concat` passed no gradient to the vectors, since fixed;
        # not measured again.) A source may declare it (a sentence encoder,
        # the encoder hybrid: not).
        declared = getattr(self.backbone, "fine_tunes_by_default", None)
        if declared is not None:
            return declared
        return not any(layer.name == "tfidf" for layer in getattr(self.backbone, "layers", []))

    def prepare_inputs(self, x):
        # Keras turns a list of str into a numpy str array, which it cannot
        # feed as tf.string; an object array it can. Accept both forms users have.
        return as_model_inputs(x)

    @property
    def vectorizer(self):
        """The source's `TextVectorization` (word-vector sources), else None:
        its vocabulary is what `WordVectors.coverage` counts."""
        return next(
            (layer for layer in walk_layers(self.backbone) if isinstance(layer, keras.layers.TextVectorization)), None
        )

    @property
    def head_layers(self):
        scaling = [self.feature_scaling] if self.feature_scaling is not None else []
        return [*self.sequence_layers, *scaling, self.head_dropout, self.head]

    def get_config(self):
        return {
            **super().get_config(),
            "conv_filters": self.conv_filters,
            "feature_scaling": self.scales_features,
            "sequence_head": self.sequence_head,
            "rnn_units": self.rnn_units,
        }


def _sparse_outputs(source):
    """Whether the source returns a `tf.SparseTensor` (the hybrid encoder);
    a nested model's call does not carry the flag, its own output does."""
    try:
        return bool(getattr(source.output, "sparse", False))
    except (AttributeError, ValueError):  # a layer, or a model without one output
        return False
