"""Data by name or path, split the same way everywhere.

`load_image_data` and `load_text_data` take a dataset name (`"cifar10"`,
`"digits"`, `"20news"`, `"mini_newsgroup"`) or a path in any format the
loaders read, and return a `Data`: train and test splits and class names.

>>> import tfxfer
>>> data = tfxfer.data.load_image_data("digits")
>>> data.x_train.shape[1:], len(data.class_names), len(data.x_test) > 0
((8, 8, 1), 10, True)
"""

import dataclasses
import os

import numpy as np

from tfxfer.data.splits import few_label_split, stratified_split

IMAGE_DATA = ("cifar10", "digits")
TEXT_DATA = ("20news", "mini_newsgroup")


@dataclasses.dataclass
class Data:
    """Train and test splits and the class names, from any source.

    `x_unlabelled`: training inputs whose labels `limited` dropped (None
    when none were), for semi-supervised training.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    x_unlabelled: np.ndarray | None = None

    def __post_init__(self):
        found = np.unique(self.y_train)
        if len(found) < 2:
            raise ValueError(
                f"The training labels hold {len(found)} class ({[self.class_names[int(c)] for c in found]} of "
                f"{len(self.class_names)}): a classifier needs examples of at least two. Check the data's labels "
                "or class folders."
            )

    def held_out(self, fraction, seed=0):
        """`(train, validation)` pairs: a stratified `fraction` of the training split."""
        return stratified_split(self.x_train, self.y_train, fraction, seed)

    def limited(self, per_class, seed=0):
        """The same data with at most `per_class` labelled training examples
        per class; the others become `x_unlabelled`."""
        if not per_class:
            return self
        keep, rest = few_label_split(self.y_train, per_class, seed)
        return dataclasses.replace(
            self,
            x_train=self.x_train[keep],
            y_train=self.y_train[keep],
            x_unlabelled=self.x_train[rest] if len(rest) else None,
        )


def _split_off_test(x, y, class_names, seed=0, fraction=0.2):
    (x_train, y_train), (x_test, y_test) = stratified_split(x, y, fraction, seed)
    return Data(x_train, y_train, x_test, y_test, class_names)


def load_image_data(data, image_size=(32, 32), seed=0):
    """`"cifar10"` (the Keras cache; downloaded when online), `"digits"`
    (scikit-learn's 8x8 digits, offline), a folder of class folders (with
    `train/` and `test/` or without; read at `image_size`), or a path
    `load_cifar10` reads (archive, batches folder, `.npz`). A source without
    a test split gets a stratified 20% held out as one."""
    from tfxfer.data.cifar10 import CLASSES, load_cifar10
    from tfxfer.data.image_folder import class_folders, load_image_folder

    if data == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = digits.images.astype("uint8")[..., None]
        return _split_off_test(images, digits.target.astype("int64"), [str(d) for d in range(10)], seed)
    path = None if data == "cifar10" else os.path.expanduser(os.fspath(data))
    if path is not None and not os.path.exists(path):
        raise FileNotFoundError(f"No image data at '{path}': pass one of {IMAGE_DATA} or an existing path.")
    train_folder = os.path.join(path, "train") if path and os.path.isdir(os.path.join(path, "train")) else path
    if train_folder and os.path.isdir(train_folder) and class_folders(train_folder):
        x_train, y_train, class_names = load_image_folder(train_folder, image_size)
        test_folder = os.path.join(path, "test")
        if not os.path.isdir(test_folder):
            return _split_off_test(x_train, y_train.astype("int64"), class_names, seed)
        x_test, y_test, _ = load_image_folder(test_folder, image_size, class_names=class_names)
        return Data(x_train, y_train.astype("int64"), x_test, y_test.astype("int64"), class_names)
    (x_train, y_train), test = load_cifar10(path)
    y_train = np.asarray(y_train).astype("int64")
    if test is None:
        return _split_off_test(x_train, y_train, list(CLASSES), seed)
    return Data(x_train, y_train, test[0], np.asarray(test[1]).astype("int64"), list(CLASSES))


def load_text_data(data, remove=("headers", "footers", "quotes"), seed=0):
    """`"20news"` (scikit-learn's cache), `"mini_newsgroup"` (gensim's
    two-group sample, offline), or a path `load_20newsgroups` reads (the
    archive, or the split folders). Without a test split (the sample, or a
    training split alone), a stratified 20% is held out as one."""
    from tfxfer.data.newsgroups import load_20newsgroups, load_mini_newsgroup, strip_posts
    from tfxfer.data.texts import as_text_array

    if data == "mini_newsgroup":
        sample = load_mini_newsgroup()
        texts = as_text_array(strip_posts(sample.data, remove))
        return _split_off_test(texts, np.asarray(sample.target), list(sample.target_names), seed)
    path = None if data == "20news" else data
    if path is not None and not os.path.exists(os.path.expanduser(path)):
        raise FileNotFoundError(f"No text data at '{path}': pass one of {TEXT_DATA} or an existing path.")
    # One read of the archive or cache for both splits; a training split alone gets 20% held out as test.
    posts = load_20newsgroups(path, "all", remove=remove, require_all=path is None)
    texts, targets = as_text_array(posts.data), np.asarray(posts.target)
    train = np.char.startswith(posts.filenames.astype(str), "20news-bydate-train/")
    if train.all():
        return _split_off_test(texts, targets, list(posts.target_names), seed)
    return Data(texts[train], targets[train], texts[~train], targets[~train], list(posts.target_names))


def digit_images(classes):
    """scikit-learn's 8x8 digits of `classes`: images (n, 8, 8, 1) float32 in [0, 16], labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    keep = np.isin(data.target, classes)
    images = data.images[keep].astype("float32")[..., None]
    return images, data.target[keep].astype("int64")
