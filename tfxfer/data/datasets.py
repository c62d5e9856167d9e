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

from tfxfer.data.examples import Examples
from tfxfer.data.newsgroups import REMOVABLE
from tfxfer.data.splits import few_label_split, stratified_split
from tfxfer.data.tables import is_table, read_table
from tfxfer.data.text_folder import read_text_folder, split_folders

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

    @property
    def multi_label(self):
        """Whether the labels are multi-hot rows (several classes per example)."""
        return np.ndim(self.y_train) == 2

    def __post_init__(self):
        found = np.flatnonzero(np.sum(self.y_train, axis=0)) if self.multi_label else np.unique(self.y_train)
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
        if self.multi_label:
            raise ValueError(
                "--labels-per-class (limited) draws examples class by class, which multi-label examples do not "
                "fall into: drop it, or subsample the data file yourself."
            )
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


def assemble(train, test=None, seed=0, multi_label=False):
    """A `Data` of `train` and `test` (`Examples`): the test labels are
    encoded in the training data's classes (a label it lacks is refused by
    its line); without `test`, a stratified 20% of `train` is held out."""
    y_train, class_names = train.encoded(multi_label=multi_label)
    if test is None:
        return _split_off_test(train.inputs, y_train, class_names, seed)
    y_test, _ = test.encoded(class_names, multi_label=multi_label)
    return Data(train.inputs, y_train, test.inputs, y_test, class_names)


def data_from(read, data, test_data=None, seed=0, multi_label=False):
    """`assemble` of what `read` (a source -> `(train, test or None)`
    `Examples`) finds in `data` and `test_data` (all of it, or its test
    split where it has one)."""
    train, test = read(data)
    if test_data is not None:
        held_train, held_test = read(test_data)
        test = held_test if held_test is not None else held_train
    return assemble(train, test, seed, multi_label)


def test_examples(read, data):
    """The examples `evaluate` and `predict` take from `data`: its test
    split where it has one, else all of it."""
    train, test = read(data)
    return test if test is not None else train


def _from_arrays(x, y, names, origin):
    """`Examples` of images `x` with integer labels `y` into `names`."""
    return Examples(x, [names[int(label)] for label in np.asarray(y).reshape(-1)], origin, names=list(names))


def _checked_path(data, named, what):
    path = os.path.expanduser(os.fspath(data))
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {what} data at '{path}': pass one of {named} or an existing file or folder.")
    return path


def image_examples(data, image_size=(32, 32), image_column=None, label_column=None, multi_label=False, decode=True):
    """`(train, test or None)` `Examples` of images, see `load_image_data`.
    Files (tables of paths, class folders) are decoded at `image_size`, or
    with `decode=False` kept as paths, to be decoded at the size a model
    takes (`load_image_files`)."""
    from tfxfer.data.cifar10 import CLASSES, load_cifar10
    from tfxfer.data.image_folder import class_folders, image_files_under, image_folder_files, load_image_files

    def decoded(examples):
        if decode:
            examples.inputs = load_image_files(list(examples.inputs), image_size)
        return examples

    if is_table(data):
        return decoded(read_table(data, "image", image_column, label_column, multi_label=multi_label)), None
    if data == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = digits.images.astype("uint8")[..., None]
        return _from_arrays(images, digits.target, [str(d) for d in range(10)], "digits"), None
    path = None if data == "cifar10" else _checked_path(data, IMAGE_DATA, "image")
    train_folder = os.path.join(path, "train") if path and os.path.isdir(os.path.join(path, "train")) else path
    if train_folder and os.path.isdir(train_folder) and class_folders(train_folder):
        paths, y, names = image_folder_files(train_folder)
        train = decoded(_from_arrays(paths, y, names, f"'{train_folder}'"))
        test_folder = os.path.join(path, "test")
        if not os.path.isdir(test_folder):
            return train, None
        paths, y, _ = image_folder_files(test_folder, class_names=names)
        return train, decoded(_from_arrays(paths, y, names, f"'{test_folder}'"))
    if path and os.path.isdir(path) and (loose := image_files_under(path)):
        raise ValueError(
            f"'{path}' holds {len(loose)} images but no class folders: put each class's images "
            f"in a folder named after it ('{path}/<class name>/<image>'), or pass a CSV of path,label."
        )
    (x_train, y_train), test = load_cifar10(path)
    origin = path or "cifar10"
    train = _from_arrays(x_train, y_train, list(CLASSES), origin)
    return train, None if test is None else _from_arrays(*test, list(CLASSES), origin)


def load_image_data(
    data, image_size=(32, 32), seed=0, *, test_data=None, image_column=None, label_column=None, multi_label=False
):
    """`"cifar10"` (the Keras cache; downloaded when online), `"digits"`
    (scikit-learn's 8x8 digits, offline), a folder of class folders (with
    `train/` and `test/` or without; read at `image_size`), a CSV/TSV/JSON
    Lines table of image paths (relative to it) and labels (`image_column`,
    `label_column`: by default `path`/`image`/`file` and `label`), or a path
    `load_cifar10` reads (archive, batches folder, `.npz`).

    `test_data`: the test set, in any of these forms (its test split where
    it has one); otherwise the data's own test split, or a stratified 20%
    held out. `multi_label`: labels are sets (`a|b` in a table cell)."""

    def read(source):
        return image_examples(source, image_size, image_column, label_column, multi_label)

    return data_from(read, data, test_data, seed, multi_label)


def text_examples(data, remove=REMOVABLE, text_column=None, label_column=None, encoding="utf-8", multi_label=False):
    """`(train, test or None)` `Examples` of texts, see `load_text_data`."""
    from tfxfer.data.newsgroups import SPLITS, load_20newsgroups, load_mini_newsgroup, strip_posts
    from tfxfer.data.texts import as_text_array

    if is_table(data):
        return read_table(data, "text", text_column, label_column, encoding, multi_label), None
    if data == "mini_newsgroup":
        sample = load_mini_newsgroup()
        texts = as_text_array(strip_posts(sample.data, remove))
        return _from_arrays(texts, sample.target, list(sample.target_names), "mini_newsgroup"), None
    path = None if data == "20news" else _checked_path(data, TEXT_DATA, "text")
    if path is not None and os.path.isdir(path) and not _is_newsgroups_folder(path, SPLITS.values()):
        train_folder, test_folder = split_folders(path)
        test = read_text_folder(test_folder, encoding) if test_folder else None
        return read_text_folder(train_folder, encoding), test
    # One read of the archive or cache for both splits.
    posts = load_20newsgroups(path, "all", remove=remove, require_all=path is None)
    texts = as_text_array(posts.data)
    examples = _from_arrays(texts, posts.target, list(posts.target_names), path or "20news")
    train = np.char.startswith(posts.filenames.astype(str), "20news-bydate-train/")
    return (examples, None) if train.all() else (examples.take(train), examples.take(~train))


def _is_newsgroups_folder(path, split_names):
    """Whether `path` is 20 Newsgroups' split folder or holds one."""
    name = os.path.basename(os.path.normpath(path))
    return name in split_names or any(os.path.isdir(os.path.join(path, split)) for split in split_names)


def load_text_data(
    data,
    remove=REMOVABLE,
    seed=0,
    *,
    test_data=None,
    text_column=None,
    label_column=None,
    encoding="utf-8",
    multi_label=False,
):
    """Texts and labels from `"20news"` (scikit-learn's cache),
    `"mini_newsgroup"` (gensim's two-group sample, offline), a path
    `load_20newsgroups` reads (the archive, or the split folders), a
    CSV/TSV/JSON Lines file (`text_column`, `label_column`: by default
    `text` and `label`; decoded as `encoding`), a folder of class folders
    of text files (`load_files`' layout; `train/` and `test/` or not), a
    pandas DataFrame, or `(texts, labels)` lists. `remove` strips the parts
    of 20 Newsgroups posts it names.

    `test_data`: the test set, in any of these forms (its test split where
    it has one); otherwise the data's own test split, or a stratified 20%
    held out. `multi_label`: labels are sets (`a|b` in a table cell, a list
    in JSON Lines)."""

    def read(source):
        return text_examples(source, remove, text_column, label_column, encoding, multi_label)

    return data_from(read, data, test_data, seed, multi_label)


def digit_images(classes):
    """scikit-learn's 8x8 digits of `classes`: images (n, 8, 8, 1) float32 in [0, 16], labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    keep = np.isin(data.target, classes)
    images = data.images[keep].astype("float32")[..., None]
    return images, data.target[keep].astype("int64")
