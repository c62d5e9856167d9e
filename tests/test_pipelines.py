"""Image pipelines: shapes, labels kept, augmentation = flip + shift."""

import numpy as np
import pytest

from tfxfer.data.pipelines import image_dataset

IMAGES = np.random.default_rng(0).integers(1, 256, size=(10, 8, 8, 3), dtype=np.uint8)
LABELS = np.arange(10)


def _candidates(image, pad):
    """Every flip + shift of `image` that pad-and-crop can produce."""
    out = []
    for flipped in (image, image[:, ::-1]):
        padded = np.pad(flipped, ((pad, pad), (pad, pad), (0, 0)))
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                out.append(padded[dy : dy + 8, dx : dx + 8])
    return out


def test_augmented_images_are_flips_and_shifts_of_their_own_image():
    batches = list(image_dataset(IMAGES, LABELS, batch_size=4, augment=True, pad=2, seed=3))
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert images.shape == IMAGES.shape and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, LABELS)  # no shuffle: order kept
    for image, label in zip(images, labels):
        assert any(np.array_equal(image, c) for c in _candidates(IMAGES[label], 2))
    assert not np.array_equal(images, IMAGES)  # something moved


def test_augmentation_is_seeded_and_changes_across_epochs():
    data = image_dataset(IMAGES, LABELS, batch_size=10, augment=True, seed=7)
    first, second = [next(iter(data))[0].numpy() for _ in range(2)]
    again = next(iter(image_dataset(IMAGES, LABELS, batch_size=10, augment=True, seed=7)))[0].numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)


def test_mismatched_labels_are_rejected():
    with pytest.raises(ValueError, match="10 images but 3 labels"):
        image_dataset(IMAGES, LABELS[:3])
