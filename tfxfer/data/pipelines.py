"""tf.data pipelines for image arrays: shuffle, augmentation, batching, prefetch.

Resizing to the source's input size is not done here: it lives in the
model's graph (`ImageBackbone`), so the pipeline moves small raw images.
"""

import numpy as np
import tensorflow as tf


def _augment(image, seed, pad):
    """Random horizontal flip, then `pad`-pixel zero padding and a random crop back."""
    flip_seed, crop_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    height, width, channels = image.shape
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    return tf.image.stateless_random_crop(padded, (height, width, channels), crop_seed)


def image_dataset(images, labels=None, batch_size=32, shuffle=False, augment=False, pad=4, seed=0):
    """A batched, prefetched `tf.data.Dataset` of uint8 images (and labels).

    Args:
        images: array (n, height, width, channels).
        labels: optional array (n,).
        shuffle: reshuffle every epoch (seeded).
        augment: CIFAR-style augmentation: random flip, `pad`-pixel pad and
            random crop; different every epoch, reproducible from `seed`.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (n, height, width, channels). Received: shape={images.shape}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels: they must match one to one.")
    data = tf.data.Dataset.from_tensor_slices(images if labels is None else (images, np.asarray(labels)))
    if shuffle:
        data = data.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if augment:
        counter = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).map(
            lambda x: tf.stack([x, x // 2])
        )
        data = tf.data.Dataset.zip((data, counter))

        def apply(example, pair_seed):
            if labels is None:
                return _augment(example, pair_seed, pad)
            image, label = example
            return _augment(image, pair_seed, pad), label

        data = data.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
