"""The embedded default source, shipped in `models/` so the demo needs no network.

A small CNN learns scikit-learn's digits 0-4 (the 8x8 images `load_digits`
ships) and is exported as a TF-Hub-format SavedModel: its 64-d features are
the knowledge the demo transfers to digits 5-9. The manifest beside it
records each file's sha256, the data, and the command that rebuilt it:

    python -m tfxfer.sources.embedded models/digits04_cnn
"""

import argparse
import hashlib
import json
import pathlib
import sys

import numpy as np

from tfxfer.settings import models_override

EMBEDDED_NAME = "digits04_cnn"
MANIFEST = "manifest.json"
SOURCE_CLASSES = (0, 1, 2, 3, 4)
FEATURE_DIM = 64
IMAGE_SHAPE = (8, 8, 1)


def models_folder():
    """Where the shipped sources are: `$TFXFER_MODELS` when set; in an
    installed package, `tfxfer/models/` (package data); in a checkout of
    the repository, its top-level `models/` (the source of truth)."""
    if models_override():
        return pathlib.Path(models_override())
    package = pathlib.Path(__file__).resolve().parents[1]
    installed = package / "models"
    return installed if installed.is_dir() else package.parent / "models"


def embedded_source_path(verify=True, name=EMBEDDED_NAME, module="tfxfer.sources.embedded"):
    """Folder of a source shipped in `models/`, checked against its manifest."""
    folder = models_folder() / name
    if not (folder / MANIFEST).is_file():
        raise FileNotFoundError(
            f"The embedded source is missing: no '{folder / MANIFEST}'. "
            f"Rebuild it with `python -m {module} {folder}`, or set "
            f"TFXFER_MODELS to the folder that holds {name}/."
        )
    if verify:
        verify_manifest(folder)
    return str(folder)


def write_manifest(folder, **fields):
    """Writes `manifest.json`: `fields`, library versions, each file's sha256."""
    import gensim
    import keras
    import sklearn
    import tensorflow as tf

    versions = {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "scikit-learn": sklearn.__version__,
        "gensim": gensim.__version__,
    }
    manifest = {**fields, "versions": versions, "files": _file_hashes(folder)}
    (pathlib.Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_hashes(folder):
    folder = pathlib.Path(folder)
    return {
        path.relative_to(folder).as_posix(): _sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def verify_manifest(folder):
    """Raises when a file of `folder` differs from its manifest's sha256."""
    manifest = json.loads((pathlib.Path(folder) / MANIFEST).read_text())
    found = _file_hashes(folder)
    expected = manifest["files"]
    bad = sorted(name for name in set(expected) | set(found) if expected.get(name) != found.get(name))
    if bad:
        raise ValueError(
            f"'{folder}' does not match its manifest (files {bad} differ, are "
            f"missing or extra). Restore it from git (`git checkout -- "
            f"{folder}`) or rebuild it: {manifest['command']}"
        )
    return manifest


def feature_extractor(seed=None):
    """The source architecture: 8x8 digit images -> 64-d features, its
    initial weights drawn from `seed` (through the initializers; None: from
    Keras' global generator)."""
    import keras

    def initializer(offset):
        return "glorot_uniform" if seed is None else keras.initializers.GlorotUniform(seed=seed + offset)

    layers = keras.layers
    inputs = keras.Input(IMAGE_SHAPE, name="images")
    x = layers.Rescaling(1 / 16)(inputs)
    for offset, filters in enumerate((32, 64)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=initializer(offset))(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    features = layers.Dense(FEATURE_DIM, activation="relu", kernel_initializer=initializer(2))(x)
    return keras.Model(inputs, features, name="digits_features")


def build_embedded_source(folder, seed=0, epochs=40):
    """Trains the source on digits 0-4, exports it to `folder`, writes the manifest."""
    import keras

    from tfxfer.data.datasets import digit_images
    from tfxfer.exporting import export_hub_module

    images, labels = digit_images(SOURCE_CLASSES)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    held_out, train = order[: len(order) // 5], order[len(order) // 5 :]
    keras.utils.set_random_seed(seed)  # this rebuild command is an application: its run is seeded whole
    extractor = feature_extractor(seed)
    classifier = keras.Sequential([extractor, keras.layers.Dense(len(SOURCE_CLASSES))])
    classifier.compile(
        keras.optimizers.Adam(3e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    classifier.fit(images[train], labels[train], epochs=epochs, batch_size=32, verbose=2)
    _, accuracy = classifier.evaluate(images[held_out], labels[held_out], verbose=0)
    export_hub_module(extractor, folder, IMAGE_SHAPE)
    return write_manifest(
        folder,
        name=EMBEDDED_NAME,
        what="CNN features (64-d) of 8x8 digit images, TF-Hub reusable "
        "SavedModel: __call__(images float32 (batch, 8, 8, 1) in [0, 16], "
        "training=False) -> (batch, 64)",
        data=f"sklearn.datasets.load_digits, classes {list(SOURCE_CLASSES)}: "
        f"{len(train)} training images, {len(held_out)} held out",
        held_out_accuracy=round(float(accuracy), 4),
        seed=seed,
        epochs=epochs,
        command=f"python -m tfxfer.sources.embedded {folder} --seed {seed} --epochs {epochs}",
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="where to write the module (must not exist)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args(argv)
    manifest = build_embedded_source(args.folder, seed=args.seed, epochs=args.epochs)
    print(f"wrote {args.folder}: held-out accuracy {manifest['held_out_accuracy']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
