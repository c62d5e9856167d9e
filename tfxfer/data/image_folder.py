"""Images stored as one folder per class, read into arrays.

`root/<class name>/*.png|jpg|...`, the layout of
`keras.utils.image_dataset_from_directory`; image files, from a folder or a
table of paths, are decoded in one way (`load_image_files`: TensorFlow's
`decode_image` and bilinear resize, as Keras does).
"""

import os
import warnings

import numpy as np

from tfxfer.data.hidden import visible
from tfxfer.data.limits import IMAGE_PIXELS, LimitError, check_regular_file

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def class_folders(root):
    """The sorted names of the sub-folders of `root` that hold images."""
    return sorted(name for name in _sub_folders(root) if _image_files(os.path.join(root, name)))


def _sub_folders(root):
    """The sub-folders of `root`, hidden ones (`.ipynb_checkpoints`) left out."""
    return [name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name)) and not name.startswith(".")]


def _image_files(folder):
    """The image-named files under `folder`, as Keras walks it (links to folders not followed)."""
    return [
        os.path.join(parent, name)
        for parent, _, names in os.walk(folder)
        for name in sorted(names)
        if name.lower().endswith(IMAGE_EXTENSIONS)
    ]


def load_image_folder(root, image_size, class_names=None, batch_size=256):
    """`(images, labels, class_names)` of a folder-per-class tree.

    Args:
        root: the folder whose sub-folders are the classes.
        image_size: `(height, width)`; images of another size are resized.
        class_names: the classes in label order; all must be present. By
            default the sub-folders, sorted.

    Returns:
        uint8 images `(n, height, width, 3)`, int labels `(n,)` in file
        order within each class, and the class names.
    """
    paths, labels, class_names = image_folder_files(root, class_names)
    return load_image_files(paths, image_size, batch_size), labels, class_names


def image_folder_files(root, class_names=None):
    """`(paths, labels, class_names)` of a folder-per-class tree, checked as
    `load_image_folder` checks it, nothing decoded: labels are ids into
    `class_names` (by default the sub-folders, sorted)."""
    root = os.fspath(root)
    found = class_folders(root) if os.path.isdir(root) else []
    if found:
        visible(os.listdir(root), root)  # says which hidden folders class_folders left out
    if not found:
        raise FileNotFoundError(
            f"No class folders with images under '{root}': expected "
            f"'{root}/<class name>/<image>' with {', '.join(IMAGE_EXTENSIONS)} files."
        )
    if class_names is None and (empty := sorted(set(_sub_folders(root)) - set(found))):
        raise ValueError(
            f"'{root}' has class folders without images: {empty}. Add images to them or remove them "
            "(a class without examples cannot be learned)."
        )
    class_names = list(class_names or found)
    missing, extra = sorted(set(class_names) - set(found)), sorted(set(found) - set(class_names))
    if missing or extra:
        raise ValueError(
            f"'{root}' has class folders {found}; expected {class_names} "
            f"(missing: {missing}, unexpected: {extra}). Rename or remove the folders."
        )
    paths, labels = [], []
    for label, name in enumerate(class_names):
        for path in _image_files(os.path.join(root, name)):
            _check_image_file(path)
            paths.append(path)
            labels.append(label)
    return paths, np.asarray(labels, "int64"), class_names


def _check_image_file(path):
    """Refuses, before decoding, a file that is no regular file or an image
    whose header declares more pixels than `TFXFER_MAX_IMAGE_PIXELS`."""
    from PIL import Image

    check_regular_file(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:  # reads the header only
                width, height = image.size
        except Image.DecompressionBombError as error:
            raise LimitError(
                f"'{path}': {error} Not decoded; if you trust the image, raise PIL.Image.MAX_IMAGE_PIXELS and "
                "TFXFER_MAX_IMAGE_PIXELS."
            ) from error
        except (OSError, SyntaxError, ValueError):
            return  # a header Pillow cannot read: TensorFlow's decoder judges the file
    IMAGE_PIXELS.check(width * height, path, f"an image of {width} x {height}")


def image_files_under(folder):
    """The image files under `folder` (any depth), sorted."""
    return sorted(_image_files(folder))


def load_image_files(paths, image_size, batch_size=256):
    """uint8 images `(n, height, width, 3)` of the image files `paths`,
    decoded and resized as `load_image_folder` does (bilinear, rounded)."""
    import tensorflow as tf

    for path in paths:
        _check_image_file(path)
    height, width = image_size

    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.image.resize(image, (height, width), method="bilinear")

    dataset = tf.data.Dataset.from_tensor_slices(np.asarray(paths, dtype=str)).map(decode).batch(batch_size)
    batches = []
    iterator = iter(dataset)
    done = 0
    while done < len(paths):
        try:
            batch = next(iterator).numpy()
        except tf.errors.InvalidArgumentError as error:
            bad = [path for path in paths[done:] if not _decodes(path)] or paths[done : done + batch_size]
            raise ValueError(
                f"Cannot decode {len(bad)} file(s) as images: {bad[:5]}. Delete or convert them (files without "
                f"{', '.join(IMAGE_EXTENSIONS)} extensions are skipped already), or remove them from the table."
            ) from error
        batches.append(np.clip(np.rint(batch), 0, 255).astype(np.uint8))
        done += len(batch)
    return np.concatenate(batches) if batches else np.zeros((0, height, width, 3), np.uint8)


def _decodes(path):
    import tensorflow as tf

    try:
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return True
    except tf.errors.InvalidArgumentError:
        return False


def to_channels(images, channels):
    """uint8 images `(n, h, w, c)` with `channels` channels: grey repeated
    to colour, colour averaged to grey (image files decode as RGB, and a
    grey PNG's three channels are equal), others unchanged."""
    have = images.shape[-1] if getattr(images, "ndim", 0) == 4 else None
    if have is None or channels is None or have == channels:
        return images
    if (have, channels) == (1, 3):
        return np.repeat(images, 3, axis=-1)
    if (have, channels) == (3, 1):
        return np.rint(images.mean(axis=-1, keepdims=True)).astype(images.dtype)
    return images


def fit_images(images, image_shape):
    """uint8 images `(n, h, w, c)` in the `image_shape` `(height, width,
    channels)` a model takes (None: any): channels as `to_channels`, and
    resized (bilinear, rounded) where the model takes one size only."""
    if getattr(images, "ndim", 0) != 4 or len(image_shape) != 3:
        return images
    images = to_channels(images, image_shape[-1])
    height, width = image_shape[:2]
    if None in (height, width) or images.shape[1:3] == (height, width):
        return images
    import tensorflow as tf

    resized = tf.image.resize(images, (height, width), method="bilinear").numpy()
    return np.clip(np.rint(resized), 0, 255).astype(images.dtype)
