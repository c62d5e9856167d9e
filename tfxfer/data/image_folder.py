"""Images stored as one folder per class, read into arrays.

`root/<class name>/*.png|jpg|...`, the layout of
`keras.utils.image_dataset_from_directory`, which does the decoding here.
"""

import os

import numpy as np

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def class_folders(root):
    """The sorted names of the sub-folders of `root` that hold images."""
    return sorted(
        name
        for name in os.listdir(root)
        if os.path.isdir(os.path.join(root, name))
        and any(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(os.path.join(root, name)))
    )


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
    import keras

    root = os.fspath(root)
    found = class_folders(root) if os.path.isdir(root) else []
    if not found:
        raise FileNotFoundError(
            f"No class folders with images under '{root}': expected "
            f"'{root}/<class name>/<image>' with {', '.join(IMAGE_EXTENSIONS)} files."
        )
    class_names = list(class_names or found)
    missing, extra = sorted(set(class_names) - set(found)), sorted(set(found) - set(class_names))
    if missing or extra:
        raise ValueError(
            f"'{root}' has class folders {found}; expected {class_names} "
            f"(missing: {missing}, unexpected: {extra}). Rename or remove the folders."
        )
    dataset = keras.utils.image_dataset_from_directory(
        root,
        labels="inferred",
        label_mode="int",
        class_names=class_names,
        color_mode="rgb",
        image_size=tuple(image_size),
        batch_size=batch_size,
        shuffle=False,
        verbose=False,
    )
    import tensorflow as tf

    try:
        images, labels = zip(*((x.numpy(), y.numpy()) for x, y in dataset))
    except tf.errors.InvalidArgumentError as error:  # a file with an image extension that is no image
        bad = _undecodable(root, class_names)
        raise ValueError(
            f"Cannot decode {len(bad)} file(s) under '{root}' as images: {bad[:5]}. Delete or convert them "
            f"(files without {', '.join(IMAGE_EXTENSIONS)} extensions are skipped already)."
        ) from error
    # Decoded pixels are whole numbers in [0, 255]; resized ones are rounded.
    images = np.clip(np.rint(np.concatenate(images)), 0, 255).astype(np.uint8)
    return images, np.concatenate(labels), class_names


def _undecodable(root, class_names):
    """The image-named files under `root/<class>/` that TensorFlow cannot decode."""
    import tensorflow as tf

    bad = []
    for name in class_names:
        folder = os.path.join(root, name)
        for file in sorted(os.listdir(folder)):
            path = os.path.join(folder, file)
            if file.lower().endswith(IMAGE_EXTENSIONS):
                try:
                    tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
                except tf.errors.InvalidArgumentError:
                    bad.append(path)
    return bad
