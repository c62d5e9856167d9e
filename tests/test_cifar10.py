"""CIFAR-10 loaders on small files generated in the real formats."""

import os
import pickle
import tarfile

import numpy as np
import pytest

from tfxfer.data.cifar10 import ARCHIVE, CLASSES, FOLDER, TEST_BATCH, TRAIN_BATCHES, load_cifar10

RNG = np.random.default_rng(0)


def _batch(n):
    images = RNG.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = RNG.integers(0, 10, size=n).tolist()
    # The real layout: rows of 1024 red, then green, then blue values.
    data = images.transpose(0, 3, 1, 2).reshape(n, 3072)
    return (
        images,
        np.array(labels, np.uint8),
        {b"batch_label": b"x", b"labels": labels, b"data": data, b"filenames": [b"f"] * n},
    )


@pytest.fixture(scope="module")
def batches_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar") / FOLDER
    folder.mkdir()
    expected = {}
    for name, n in [*[(b, 3) for b in TRAIN_BATCHES], (TEST_BATCH, 4)]:
        images, labels, batch = _batch(n)
        expected[name] = (images, labels)
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return folder, expected


def _check(loaded, expected):
    (x_train, y_train), (x_test, y_test) = loaded
    np.testing.assert_array_equal(x_train, np.concatenate([expected[b][0] for b in TRAIN_BATCHES]))
    np.testing.assert_array_equal(y_train, np.concatenate([expected[b][1] for b in TRAIN_BATCHES]))
    np.testing.assert_array_equal(x_test, expected[TEST_BATCH][0])
    np.testing.assert_array_equal(y_test, expected[TEST_BATCH][1])
    assert x_train.shape == (15, 32, 32, 3) and x_train.dtype == np.uint8


def test_extracted_folder_and_its_parent(batches_folder):
    folder, expected = batches_folder
    _check(load_cifar10(folder), expected)
    _check(load_cifar10(folder.parent), expected)


def test_archive_is_read_in_place(batches_folder, tmp_path):
    folder, expected = batches_folder
    archive = tmp_path / ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=FOLDER)
    _check(load_cifar10(archive), expected)
    assert sorted(os.listdir(tmp_path)) == [ARCHIVE]  # nothing extracted


def test_npz_in_the_keras_layout(tmp_path):
    x, y, _ = _batch(5)
    np.savez(tmp_path / "c.npz", x_train=x, y_train=y.reshape(-1, 1))
    (x_train, y_train), test = load_cifar10(tmp_path / "c.npz")
    np.testing.assert_array_equal(x_train, x)
    np.testing.assert_array_equal(y_train, y)
    assert test is None


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_that_runs_code_is_refused(batches_folder, tmp_path):
    folder, _ = batches_folder
    bad = tmp_path / FOLDER
    bad.mkdir()
    for name in os.listdir(folder):
        (bad / name).write_bytes((folder / name).read_bytes())
    (bad / "data_batch_2").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_2.*refused to load posix.system"):
        load_cifar10(bad)


def test_truncated_and_missing_files_are_named(batches_folder, tmp_path):
    folder, _ = batches_folder
    broken = tmp_path / FOLDER
    broken.mkdir()
    for name in TRAIN_BATCHES:
        (broken / name).write_bytes((folder / name).read_bytes())
    with pytest.raises(FileNotFoundError, match=f"lacks {TEST_BATCH}"):
        load_cifar10(broken)
    (broken / TEST_BATCH).write_bytes((folder / TEST_BATCH).read_bytes()[:100])
    with pytest.raises(ValueError, match=r"test_batch' is not a CIFAR-10 batch.*truncated"):
        load_cifar10(broken)
    with pytest.raises(FileNotFoundError, match="No CIFAR-10 data at"):
        load_cifar10(tmp_path / "absent.tar.gz")


def test_keras_cache_is_read_with_the_restricted_unpickler(batches_folder, tmp_path, monkeypatch):
    folder, expected = batches_folder
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cached = tmp_path / "datasets" / f"{FOLDER}-target" / FOLDER  # where Keras 3 extracts it
    cached.mkdir(parents=True)
    for name in os.listdir(folder):
        (cached / name).write_bytes((folder / name).read_bytes())
    _check(load_cifar10(), expected)
    (cached / "data_batch_3").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match="refused to load posix.system"):
        load_cifar10()


def _write_class_folders(root, per_class, size=(32, 32)):
    import keras

    images, labels = [], []
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = RNG.integers(0, 256, size=(*size, 3), dtype=np.uint8)
            keras.utils.save_img(root / name / f"{i:04d}.png", image)
            images.append(image)
            labels.append(label)
    return np.stack(images), np.array(labels, np.uint8)


def test_image_folders_per_class_with_train_and_test(tmp_path):
    x_train, y_train = _write_class_folders(tmp_path / "train", 2)
    x_test, y_test = _write_class_folders(tmp_path / "test", 1)
    (lx_train, ly_train), (lx_test, ly_test) = load_cifar10(tmp_path)
    np.testing.assert_array_equal(lx_train, x_train)  # PNG is lossless: pixel for pixel
    np.testing.assert_array_equal(ly_train, y_train)
    np.testing.assert_array_equal(lx_test, x_test)
    np.testing.assert_array_equal(ly_test, y_test)
    assert lx_train.dtype == np.uint8 and ly_train.dtype == np.uint8


def test_class_folders_alone_and_a_missing_class(tmp_path):
    x, y = _write_class_folders(tmp_path / "all", 1, size=(40, 36))
    (images, labels), test = load_cifar10(tmp_path / "all")
    assert images.shape == (10, 32, 32, 3) and test is None  # resized to CIFAR's size
    np.testing.assert_array_equal(labels, y)
    for image in (tmp_path / "all" / "truck").iterdir():
        image.unlink()
    (tmp_path / "all" / "truck").rmdir()
    with pytest.raises(ValueError, match=r"missing: \['truck'\]"):
        load_cifar10(tmp_path / "all")


def test_non_image_files_are_skipped_and_undecodable_images_named(tmp_path):
    x, y = _write_class_folders(tmp_path / "all", 1)
    (tmp_path / "all" / "cat" / "notes.txt").write_text("not an image, and not named like one")
    (tmp_path / "all" / "dog" / ".DS_Store").write_bytes(b"\0\1")
    (images, labels), _ = load_cifar10(tmp_path / "all")
    np.testing.assert_array_equal(images, x)  # the other files are skipped
    (tmp_path / "all" / "ship" / "broken.png").write_text("named like an image, but text")
    with pytest.raises(ValueError, match=r"Cannot decode 1 file\(s\).*ship/broken\.png.*Delete or convert"):
        load_cifar10(tmp_path / "all")


def test_npz_values_are_checked_not_just_shapes(tmp_path):
    """Float pixels in [0, 1] are scaled (with a warning), not cast to black;
    pixels outside 0-255, labels that are not integers 0-9, and one class
    alone are refused with what was found."""
    from tfxfer.data import load_image_data

    rng = np.random.default_rng(0)
    images = rng.random((20, 32, 32, 3)).astype("float32")
    labels = np.arange(20) % 10

    def saved(name, **arrays):
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        return path

    with pytest.warns(UserWarning, match=r"float images in \[0, 1\]: scaled by 255"):
        data = load_image_data(saved("unit", x_train=images, y_train=labels))
    assert data.x_train.dtype == np.uint8 and data.x_train.max() > 200
    with pytest.raises(ValueError, match="pixel values run from -0.99"):
        load_image_data(saved("signed", x_train=images * 2 - 1, y_train=labels))
    with pytest.raises(ValueError, match="labels must be integers 0-9.*from -1"):
        load_image_data(saved("negative", x_train=images, y_train=labels - 1))
    with pytest.raises(ValueError, match="labels must be integers 0-9"):
        load_image_data(saved("fractional", x_train=images, y_train=labels + 0.5))
    with pytest.raises(ValueError, match=r"1 class \(\['airplane'\] of 10\).*at least two"):
        load_image_data(saved("one", x_train=images, y_train=np.zeros(20, "uint8")))
