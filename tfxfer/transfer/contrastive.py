"""Contrastive fine-tuning of a sentence encoder on few labels (SetFit).

SetFit (Tunstall et al. 2022) fine-tunes a pretrained sentence encoder on
pairs of labelled texts before any head sees them: a pair of one class
should embed close together (cosine similarity 1), a pair of two classes
apart (0). Each iteration pairs every labelled text once with another of
its class and once with one of another class, so 10 labels per class give
hundreds of distinct pairs to learn from; the head is then trained on the
fine-tuned embeddings. It needs no validation split, which few labels do
not afford.

`contrastive_fine_tune(model, x, y)` runs it as one `fit_stage` (resumable,
checkpointed per iteration) of `PairSimilarityTrainer`, the Keras model
that shares the task's sentence encoder.
"""

import keras
import numpy as np
import tensorflow as tf

from tfxfer.data.texts import as_text_array
from tfxfer.transfer.contract import contract
from tfxfer.transfer.stages import fit_stage
from tfxfer.validation import check_number, check_seed
from tfxfer.walk import walk_layers

# Pairs a stage may train on by default: SetFit's 20 iterations for up to 50
# labelled texts, fewer for more (every text still paired at least twice):
# 2,000 pairs of 128 tokens take about 5 minutes with MiniLM-L6 on 2 CPU cores.
AUTO_PAIRS = 2000
MAX_ITERATIONS = 20


class PairSimilarityTrainer(keras.Model):
    """Trains `encoder` (strings in, one vector per string out) on batches
    `((texts_a, texts_b), similarity)`: the cosine similarity of the two
    texts' vectors is regressed to `similarity` (1: same class, 0: not) by
    mean squared error, SetFit's `CosineSimilarityLoss`. Its weights are the
    encoder's; compile it with an optimizer (the loss is its own).
    """

    def __init__(self, encoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True  # no weights of its own (backups need a built model)

    def call(self, inputs, training=False):
        first, second = inputs
        first = tf.math.l2_normalize(tf.cast(self.encoder(first, training=training), "float32"), axis=-1)
        second = tf.math.l2_normalize(tf.cast(self.encoder(second, training=training), "float32"), axis=-1)
        return tf.reduce_sum(first * second, axis=-1)

    def train_step(self, data):
        pairs, similarity = data
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(self(pairs, training=True) - tf.cast(similarity, "float32")))
        variables = self.trainable_variables
        # The pooling a sentence encoder declares leaves the backbone's pooler unused: no gradient, no update.
        pairs = [(g, v) for g, v in zip(tape.gradient(loss, variables), variables, strict=True) if g is not None]
        self.optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):  # its own loss only: the task's compiled metrics read class ids
        return [self.loss_tracker]


def sentence_encoder(model):
    """The layer of `model`'s source that embeds each text as one vector
    and can be fine-tuned: a KerasHub text encoder (the source itself, or
    the encoder inside a hybrid). Raises a ValueError naming the source when
    it has none (word vectors, TF-IDF, a TF-Hub module)."""
    source = contract(model).backbone
    for layer in walk_layers(source):
        if getattr(layer, "is_text", False) and hasattr(layer, "backbone"):  # KerasHubFeatures on text
            return layer
    raise ValueError(
        f"Contrastive fine-tuning trains a sentence encoder; the source {source.name!r} "
        f"({type(source).__name__}) has none. Use a KerasHub preset or a Hugging Face / sentence-transformers "
        "folder as the source."
    )


def contrastive_pairs(y, iterations, seed=0):
    """`(first, second, similarity)`: index arrays into `y` and each pair's
    target. Per iteration every example is paired once with another of its
    class (1.0) and once with one of another class (0.0); a class with one
    example only gets no positive pair. Shuffled, seeded."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    members = {label: np.flatnonzero(y == label) for label in np.unique(y)}
    others = {label: np.flatnonzero(y != label) for label in members}  # once, not per text and iteration
    first, second, similarity = [], [], []
    for _ in range(iterations):
        for index, label in enumerate(y):
            same = members[label][members[label] != index]
            if len(same):
                first.append(index), second.append(rng.choice(same)), similarity.append(1.0)
            other = others[label]
            if len(other):
                first.append(index), second.append(rng.choice(other)), similarity.append(0.0)
    order = rng.permutation(len(first))
    return np.asarray(first)[order], np.asarray(second)[order], np.asarray(similarity, "float32")[order]


def auto_iterations(examples, pairs=AUTO_PAIRS):
    """Iterations over `examples` labelled texts that make about `pairs`
    pairs (two per text and iteration), between 2 and `MAX_ITERATIONS`."""
    return int(np.clip(pairs // max(2 * examples, 1), 2, MAX_ITERATIONS))


def contrastive_fine_tune(
    model,
    x,
    y,
    *,
    iterations="auto",
    batch_size=16,
    learning_rate=2e-5,
    sequence_length=128,
    seed=0,
    checkpoint_dir=None,
    callbacks=(),
    verbose="auto",
):
    """Fine-tunes `model`'s sentence encoder on pairs of its labelled texts
    (SetFit), so that texts of one class embed close together; train the
    head afterwards (`fit_head`), on the fine-tuned embeddings.

    Args:
        model: a task model whose source is (or holds) a KerasHub text
            encoder (`sentence_encoder`).
        x, y: the labelled texts and their class ids.
        iterations: pairs made per labelled text, over two (`"auto"`:
            `auto_iterations`, about `AUTO_PAIRS` pairs in all). Each
            iteration is one epoch, checkpointed under
            `checkpoint_dir/contrastive`; a rerun resumes it.
        batch_size: pairs per step.
        learning_rate: the encoder's peak rate (AdamW, warm-up + cosine;
            SetFit's 2e-5).
        sequence_length: the tokens the encoder reads while it trains (None:
            its own); features are then extracted at its own length. 128
            halves the cost of 256 on a CPU.
        seed: of the pairs.

    Returns the stage's `History` (None when a rerun finds it done). The
    encoder is frozen again afterwards, as the head expects.
    """
    encoder = sentence_encoder(model)
    x = as_text_array(x)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"Contrastive fine-tuning pairs texts by their one class: pass one class id per text. "
            f"Received: {len(x)} texts, labels of shape {y.shape}."
        )
    if len(np.unique(y)) < 2:
        raise ValueError("Contrastive fine-tuning needs labelled texts of two classes at least.")
    check_seed(seed)
    iterations = auto_iterations(len(y)) if iterations == "auto" else iterations
    check_number("iterations", iterations, 1, integer=True, hint=" (or 'auto')")
    first, second, similarity = contrastive_pairs(y, iterations, seed)
    per_epoch = -(-len(similarity) // (iterations * batch_size))
    # Repeated: the epochs read one stream of pairs, never running out on the last one's rounding.
    dataset = tf.data.Dataset.from_tensor_slices(((x[first], x[second]), similarity)).batch(batch_size).repeat()
    own_length = encoder.preprocessing.sequence_length
    trainer = PairSimilarityTrainer(encoder, name="pair_similarity")
    encoder.trainable = True
    try:
        with encoder.reading(min(int(sequence_length or own_length), own_length)):
            return fit_stage(
                model, dataset, name="contrastive", epochs=iterations, learning_rate=learning_rate, optimizer="adamw",
                trainer=trainer, steps_per_epoch=per_epoch, checkpoint_dir=checkpoint_dir, callbacks=list(callbacks),
                verbose=verbose,
            )  # fmt: skip
    finally:
        encoder.trainable = False
