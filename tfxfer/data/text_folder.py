"""Texts stored as one folder per class: scikit-learn's `load_files` layout.

`root/<class name>/<any file name>`, or `root/train/<class>/...` beside
`root/test/<class>/...`. scikit-learn's `load_files` lists the files (hidden
ones left out); each is decoded here so that an undecodable one is named.
"""

import os

import numpy as np

from tfxfer.data.examples import Examples
from tfxfer.data.hidden import visible
from tfxfer.data.limits import check_regular_file


def text_class_folders(root):
    """The sorted visible sub-folders of `root` that hold files."""
    if not os.path.isdir(root):
        return []
    return sorted(
        name
        for name in os.listdir(root)
        if not name.startswith(".")
        and os.path.isdir(os.path.join(root, name))
        and any(not f.startswith(".") for f in os.listdir(os.path.join(root, name)))
    )


def split_folders(root):
    """`(train folder, test folder or None)` of a class-folder tree."""
    train, test = os.path.join(root, "train"), os.path.join(root, "test")
    if text_class_folders(train):
        return train, (test if text_class_folders(test) else None)
    return root, None


def read_text_folder(root, encoding="utf-8"):
    """`Examples` of a folder of class folders of text files (labels: the folder names)."""
    from sklearn.datasets import load_files

    classes = text_class_folders(root)
    if classes:
        visible(os.listdir(root), root)  # says which hidden folders are no class
    if len(classes) < 1:
        raise FileNotFoundError(
            f"No class folders under '{root}': expected '{root}/<class name>/<text file>' (any file names), "
            "or a CSV / JSON Lines file."
        )
    files = load_files(root, categories=classes, load_content=False, shuffle=False)
    texts = np.empty(len(files.filenames), dtype=object)
    for i, path in enumerate(files.filenames):
        check_regular_file(path)
        with open(path, "rb") as file:
            raw = file.read()
        try:
            texts[i] = raw.decode(encoding)
        except UnicodeDecodeError as error:
            raise ValueError(
                f"'{path}': not {encoding} text (byte {raw[error.start]:#04x} at offset {error.start}): pass "
                "--encoding (encoding=) with the files' encoding (e.g. latin-1), or re-save it as UTF-8."
            ) from None
    labels = [files.target_names[t] for t in files.target]
    lines = [f"file '{os.path.relpath(path, root)}'" for path in files.filenames]
    return Examples(texts, labels, f"'{root}'", lines, names=list(files.target_names))
