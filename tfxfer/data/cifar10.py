"""CIFAR-10 from the files users have, without trusting their pickles.

Accepted: the Keras cache (`$KERAS_HOME/datasets`, `~/.keras` by default),
the `cifar-10-python.tar.gz` archive (read in place, nothing extracted), the
extracted `cifar-10-batches-py/` folder, `.npz` arrays in the layout of
`keras.datasets.cifar10.load_data()` (`x_train`, `y_train`, optional
`x_test`, `y_test`), and images in a folder per class (`train/airplane/...`,
`test/...`, or the class folders alone). Images come back as uint8
(n, 32, 32, 3), labels as uint8 (n,).
"""

import os
import pickle
import tarfile
import warnings
import zipfile

import numpy as np

from tfxfer.data.archives import checked_members, is_tar_archive, reading_archive
from tfxfer.data.image_folder import class_folders, load_image_folder
from tfxfer.data.limits import LimitError, check_npz, check_regular_file
from tfxfer.data.safe_pickle import NUMPY_ARRAYS, restricted_loads
from tfxfer.settings import keras_cache_folder

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"


def read_batch(data, origin):
    """Images (n, 32, 32, 3) uint8 and labels (n,) uint8 of one pickled batch."""
    try:
        batch = restricted_loads(data, NUMPY_ARRAYS, "a CIFAR-10 batch holds only numpy arrays and lists", "bytes")
        pixels = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch.get(b"labels", batch.get(b"fine_labels")), dtype=np.uint8)
        images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError) as error:
        raise ValueError(
            f"'{origin}' is not a CIFAR-10 batch ({error}). Expected a pickled "
            "dict with b'data' (n, 3072) uint8 and b'labels', as in "
            f"{ARCHIVE}; re-download the archive if it is truncated."
        ) from error
    if len(images) != len(labels):
        raise ValueError(f"'{origin}' has {len(images)} images but {len(labels)} labels.")
    return images, labels


def _concat(parts):
    images, labels = zip(*parts)
    return np.concatenate(images), np.concatenate(labels)


def _from_folder(folder):
    def read(name):
        path = os.path.join(folder, name)
        check_regular_file(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"'{folder}' lacks {name}: a complete {FOLDER} folder holds "
                f"{', '.join(TRAIN_BATCHES)} and {TEST_BATCH}."
            )
        with open(path, "rb") as file:
            return read_batch(file.read(), path)

    return _concat([read(n) for n in TRAIN_BATCHES]), read(TEST_BATCH)


def _from_archive(path):
    with reading_archive(path, f"download {ARCHIVE} again"), tarfile.open(path, "r:*") as archive:
        members = {os.path.basename(m.name): m for m in checked_members(archive, path) if m.isfile()}

        def read(name):
            if name not in members:
                raise ValueError(f"'{path}' has no {name}: not a complete {ARCHIVE}.")
            return read_batch(archive.extractfile(members[name]).read(), f"{path}:{members[name].name}")

        return _concat([read(n) for n in TRAIN_BATCHES]), read(TEST_BATCH)


def _read_npz(path):
    """The arrays of an .npz, or a ValueError naming the file (numpy raises
    EOFError, BadZipFile or a pickle warning without naming it)."""
    try:
        check_npz(path)
        with np.load(path, allow_pickle=False) as arrays:
            if not hasattr(arrays, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
            return {name: arrays[name] for name in arrays.files}
    except LimitError:
        raise
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, KeyError) as error:
        raise ValueError(
            f"'{path}' is not a readable .npz of plain arrays ({type(error).__name__}: {error}); "
            "write it with numpy.savez(path, x_train=..., y_train=...)."
        ) from error


def _from_npz(path):
    arrays = _read_npz(path)
    if "x_train" not in arrays or "y_train" not in arrays:
        raise ValueError(
            f"'{path}' holds {sorted(arrays)}; expected x_train (n, 32, 32, 3) "
            "uint8 and y_train (n,), optionally x_test and y_test."
        )
    splits = [(arrays["x_train"], arrays["y_train"])]
    if "x_test" in arrays:
        splits.append((arrays["x_test"], arrays.get("y_test", np.empty(0))))
    for images, labels in splits:
        if images.ndim != 4 or images.shape[-1] != 3 or len(images) != len(labels.reshape(-1)):
            raise ValueError(
                f"'{path}': images {images.shape} and labels {labels.shape} do not match (n, H, W, 3) and (n,)."
            )
    cleaned = [(_checked_pixels(path, x), _checked_labels(path, y.reshape(-1))) for x, y in splits]
    return cleaned[0], (cleaned[1] if len(cleaned) > 1 else None)


def _checked_pixels(path, images):
    """uint8 images: integers in 0-255 as they are, floats in 0-1 scaled by
    255 (with a warning); anything else refused with the range found."""
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind not in "uif":
        raise ValueError(f"'{path}': images of dtype {images.dtype}; expected uint8 pixels in 0-255.")
    low, high = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 255:
        raise ValueError(f"'{path}': pixel values run from {low} to {high}; expected 0-255 (uint8).")
    if images.dtype.kind == "f" and high <= 1.0:
        warnings.warn(f"'{path}': float images in [0, 1]: scaled by 255 to uint8 pixels.", stacklevel=3)
        images = images * 255.0
    return np.round(images).astype(np.uint8)


def _checked_labels(path, labels):
    """Integral labels in 0-9, as uint8; others refused before any cast."""
    if labels.size and (
        labels.dtype.kind not in "iuf" or not np.all(np.mod(labels, 1) == 0) or labels.min() < 0 or labels.max() > 9
    ):
        raise ValueError(
            f"'{path}': labels must be integers 0-9 (the CIFAR-10 classes); found {labels.dtype} values from "
            f"{labels.min()} to {labels.max()}."
        )
    return labels.astype(np.uint8)


def _from_image_folders(root):
    def read(folder):
        images, labels, _ = load_image_folder(folder, (32, 32), class_names=CLASSES)
        return images, labels.astype(np.uint8)

    if os.path.isdir(os.path.join(root, "train")):
        test = os.path.join(root, "test")
        return read(os.path.join(root, "train")), (read(test) if os.path.isdir(test) else None)
    return read(root), None


def keras_cache_folders():
    """Where `keras.datasets.cifar10` keeps the batches, Keras 3 then Keras 2."""
    datasets = keras_cache_folder("datasets")
    return [os.path.join(datasets, f"{FOLDER}-target", FOLDER), os.path.join(datasets, FOLDER)]


def _from_keras_cache():
    for folder in keras_cache_folders():
        if os.path.isdir(folder):
            return _from_folder(folder)
    import keras

    # Not cached: Keras downloads the archive and checks its sha256.
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    return (x_train, y_train.reshape(-1)), (x_test, y_test.reshape(-1))


def load_cifar10(path=None):
    """`(x_train, y_train), (x_test, y_test)` from `path`, or from the Keras cache.

    `(x_test, y_test)` is None for an `.npz` without a test split and for a
    folder of class folders without `test/`. With no `path`, the Keras cache
    is read (with the same restricted unpickler); when it is empty, Keras
    downloads the archive.
    """
    if path is None:
        return _from_keras_cache()
    path = os.path.expanduser(os.fspath(path))
    if os.path.isdir(path):
        nested = os.path.join(path, FOLDER)
        if os.path.isdir(nested) or os.path.isfile(os.path.join(path, TRAIN_BATCHES[0])):
            return _from_folder(nested if os.path.isdir(nested) else path)
        if os.path.isdir(os.path.join(path, "train")) or class_folders(path):
            return _from_image_folders(path)
        return _from_folder(path)  # names what a batches folder lacks
    check_regular_file(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No CIFAR-10 data at '{path}'. Pass {ARCHIVE}, the extracted {FOLDER}/ "
            "folder, an .npz with x_train and y_train, or a folder of class folders."
        )
    if path.endswith(".npz"):
        return _from_npz(path)
    if is_tar_archive(path):
        return _from_archive(path)
    raise ValueError(f"'{path}' is neither a tar archive, a folder nor an .npz: expected {ARCHIVE}.")
