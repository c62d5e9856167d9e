"""FixMatch (Sohn et al. 2020): unlabelled images teach by consistency.

Each step takes a batch of labelled images and `unlabelled_ratio` times as
many unlabelled ones. A weakly augmented view of each unlabelled image (flip
and shift) is predicted; where the prediction is confident (softmax at least
`threshold`), its class becomes the target of a strongly augmented view
(RandAugment on top), so that the model learns to give the same answer under
heavy distortion. The loss is the labelled cross-entropy (on weak views) plus
`weight` times the masked pseudo-label cross-entropy.

`fixmatch_fine_tune(model, x, y, unlabelled)` is `fine_tune` trained this
way: its stages run `FixMatchTrainer`, the Keras model that does it and
shares every weight with the task model.
"""

import keras
import numpy as np
import tensorflow as tf

from tfxfer.transfer.contract import contract
from tfxfer.transfer.feature_cache import adapt_scaling_on_inputs
from tfxfer.transfer.fine_tuning import fine_tune


def _weak_augmentation(seed):
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomTranslation(0.125, 0.125, fill_mode="reflect", seed=seed + 1),
        ],
        name="weak_augmentation",
    )


class FixMatchTrainer(keras.Model):
    """Trains `task` (a model on images with values in 0-255, giving logits)
    on batches `((images, labels), unlabelled_images)` by FixMatch; predicts
    and evaluates as `task` does. Compile it with the optimizer, loss and
    metrics the task would take.

    Args:
        task: the task model; its weights are this model's weights.
        threshold: the least softmax confidence of a weak view's class to
            become its strong view's target.
        weight: of the unlabelled loss against the labelled one.
        strong_ops: RandAugment operations per strong view.
        seed: of the augmentations.
    """

    def __init__(self, task, threshold=0.95, weight=1.0, strong_ops=2, seed=0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold is a softmax confidence in [0, 1). Received: threshold={threshold}")
        self.task, self.threshold, self.weight = task, float(threshold), float(weight)
        self.strong_ops, self.seed = int(strong_ops), int(seed)
        self.weak = _weak_augmentation(seed)
        self.strong = keras.layers.RandAugment(value_range=(0, 255), num_ops=strong_ops, seed=seed + 2)
        self.unlabelled_loss_tracker = keras.metrics.Mean(name="unlabelled_loss")
        self.mask_rate_tracker = keras.metrics.Mean(name="mask_rate")

    def call(self, inputs, training=False):
        return self.task(inputs, training=training)

    def train_step(self, data):
        (images, labels), unlabelled = data
        images = self.weak(tf.cast(images, "float32"), training=True)
        unlabelled = tf.cast(unlabelled, "float32")
        weak_view = self.weak(unlabelled, training=True)
        strong_view = self.strong(self.weak(unlabelled, training=True), training=True)
        with tf.GradientTape() as tape:
            logits = self.task(images, training=True)
            # the weak view's guess is a target, not a path for gradients
            guess = tf.stop_gradient(tf.nn.softmax(tf.cast(self.task(weak_view, training=True), "float32")))
            mask = tf.cast(tf.reduce_max(guess, axis=-1) >= self.threshold, "float32")
            strong_logits = tf.cast(self.task(strong_view, training=True), "float32")
            pseudo_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.argmax(guess, axis=-1), strong_logits)
            unlabelled_loss = tf.reduce_mean(mask * pseudo_loss)
            loss = self.compute_loss(x=images, y=labels, y_pred=logits) + self.weight * unlabelled_loss
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        self.unlabelled_loss_tracker.update_state(unlabelled_loss)
        self.mask_rate_tracker.update_state(tf.reduce_mean(mask))
        for metric in self.metrics:  # the compiled loss and metrics, then the two trackers
            if metric.name == "loss":
                metric.update_state(loss)
            elif metric not in (self.unlabelled_loss_tracker, self.mask_rate_tracker):
                metric.update_state(labels, logits)
        return self.get_metrics_result()


def fixmatch_dataset(x, y, x_unlabelled, batch_size=32, unlabelled_ratio=7, seed=0):
    """Endless batches `((images, labels), unlabelled_images)`, both sides
    reshuffled on each pass, and the steps that make one pass over the
    unlabelled images (an epoch)."""
    x, x_unlabelled = np.asarray(x), np.asarray(x_unlabelled)
    if x.ndim != 4 or x_unlabelled.ndim != 4 or x.shape[1:] != x_unlabelled.shape[1:]:
        raise ValueError(
            "FixMatch takes labelled and unlabelled images of one shape (n, height, width, channels). "
            f"Received: x {x.shape}, unlabelled {x_unlabelled.shape}."
        )
    if len(y) != len(x):
        raise ValueError(f"{len(x)} images but {len(y)} labels: they must match one to one.")
    unlabelled_batch = batch_size * int(unlabelled_ratio)
    labelled = tf.data.Dataset.from_tensor_slices((x, np.asarray(y)))
    labelled = labelled.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size)
    unlabelled = tf.data.Dataset.from_tensor_slices(x_unlabelled)
    unlabelled = unlabelled.shuffle(len(x_unlabelled), seed=seed + 1, reshuffle_each_iteration=True)
    unlabelled = unlabelled.repeat().batch(unlabelled_batch)
    steps = max(-(-len(x_unlabelled) // unlabelled_batch), 1)
    return tf.data.Dataset.zip((labelled, unlabelled)).prefetch(tf.data.AUTOTUNE), steps


def fixmatch_fine_tune(
    model, x, y, unlabelled, *, threshold=0.95, unlabelled_ratio=7, batch_size=32, **fine_tune_kwargs
):
    """`fine_tune` whose stages train by FixMatch: each step adds
    `unlabelled_ratio` times as many unlabelled images, whose weakly
    augmented view, where predicted with at least `threshold` confidence,
    labels a strongly augmented view; the labelled images are weakly
    augmented too. An epoch is one pass over the unlabelled images.

    Args:
        x, y: labelled images (arrays) and their labels.
        unlabelled: images without labels, of the same shape.
        fine_tune_kwargs: see `fine_tune` and `fit_stage`.
    """
    task = contract(model)
    task.check_labels(y)
    task.check_inputs(np.asarray(unlabelled))
    adapt_scaling_on_inputs(task, np.asarray(x))  # on the labelled images, before they stream
    dataset, steps = fixmatch_dataset(x, y, unlabelled, batch_size, unlabelled_ratio)
    trainer = FixMatchTrainer(model, threshold=threshold)
    return fine_tune(model, dataset, trainer=trainer, steps_per_epoch=steps, **fine_tune_kwargs)
