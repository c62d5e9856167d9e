"""Datasets in the formats users have, and tf.data pipelines.

By name, path, DataFrame or lists: `load_image_data`, `load_text_data` (a
`Data` with train and test splits; tables, JSON Lines and class folders
as `tfxfer fit` reads them). Format by format: `load_cifar10`, `load_image_folder`,
`load_20newsgroups`, `load_mini_newsgroup`, `digit_images`. Splits:
`stratified_split`, `few_label_split`; texts as Keras feeds them: `as_text_array`.
For training: `image_dataset` (shuffled, augmented, prefetched batches).
"""

from tfxfer.data.cifar10 import load_cifar10
from tfxfer.data.datasets import Data, digit_images, load_image_data, load_text_data
from tfxfer.data.image_folder import load_image_folder
from tfxfer.data.newsgroups import load_20newsgroups, load_mini_newsgroup, strip_posts
from tfxfer.data.pipelines import image_dataset
from tfxfer.data.splits import few_label_split, stratified_split
from tfxfer.data.texts import as_text_array

__all__ = [
    "Data",
    "as_text_array",
    "digit_images",
    "few_label_split",
    "image_dataset",
    "load_20newsgroups",
    "load_cifar10",
    "load_image_data",
    "load_image_folder",
    "load_mini_newsgroup",
    "load_text_data",
    "stratified_split",
    "strip_posts",
]
