"""Datasets in the formats users have, and tf.data pipelines.

By name or path: `load_image_data`, `load_text_data` (a `Data` with train
and test splits). Format by format: `load_cifar10`, `load_image_folder`,
`load_20newsgroups`, `load_mini_newsgroup`, `digit_images`. For training:
`image_dataset` (shuffled, augmented, prefetched batches).
"""

from tfxfer.data.cifar10 import load_cifar10
from tfxfer.data.datasets import Data, digit_images, load_image_data, load_text_data
from tfxfer.data.image_folder import load_image_folder
from tfxfer.data.newsgroups import load_20newsgroups, load_mini_newsgroup, strip_posts
from tfxfer.data.pipelines import image_dataset

__all__ = [
    "Data",
    "digit_images",
    "image_dataset",
    "load_20newsgroups",
    "load_cifar10",
    "load_image_data",
    "load_image_folder",
    "load_mini_newsgroup",
    "load_text_data",
    "strip_posts",
]
