"""End-to-end runs behind the `tfxfer` command: data by name or path, a
source by name, handle or path, the head trained on cached features, then
`fine_tune`, evaluation, plots and export, all into a `RunFolder`.

The same functions serve scripts and notebooks:

>>> from tfxfer.recipes import load_image_data
>>> data = load_image_data("digits")
>>> data.x_train.shape[1:], len(data.class_names), len(data.x_test) > 0
((8, 8, 1), 10, True)
"""

import dataclasses
import os
import time

import numpy as np

IMAGE_DATA = ("cifar10", "digits")
TEXT_DATA = ("20news", "mini_newsgroup")
EMBEDDED_VECTORS = "embedded"


@dataclasses.dataclass
class Data:
    """Train and test splits and the class names, from any source."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list

    def held_out(self, fraction, seed=0):
        """`(train, validation)` pairs: a stratified `fraction` of the training split."""
        return _stratified_split(self.x_train, self.y_train, fraction, seed)

    def limited(self, per_class, seed=0):
        """The same data with at most `per_class` training examples per class."""
        if not per_class:
            return self
        rng = np.random.default_rng(seed)
        keep = np.concatenate([rng.permutation(np.flatnonzero(self.y_train == c))[:per_class]
                               for c in np.unique(self.y_train)])
        keep = rng.permutation(keep)
        return dataclasses.replace(self, x_train=self.x_train[keep], y_train=self.y_train[keep])


def _stratified_split(x, y, fraction, seed):
    """`(x, y), (x_held, y_held)`: a stratified `fraction` held out."""
    from sklearn.model_selection import train_test_split

    x_kept, x_held, y_kept, y_held = train_test_split(x, y, test_size=fraction, random_state=seed, stratify=y)
    return (x_kept, y_kept), (x_held, y_held)


def _split_off_test(x, y, class_names, seed=0, fraction=0.2):
    (x_train, y_train), (x_test, y_test) = _stratified_split(x, y, fraction, seed)
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
    two-group sample, offline, 20% held out as test), or a path
    `load_20newsgroups` reads (the archive, or the split folders)."""
    from tfxfer.data.newsgroups import load_20newsgroups, load_mini_newsgroup, strip_posts
    from tfxfer.sources.text_encoder import as_text_array

    if data == "mini_newsgroup":
        sample = load_mini_newsgroup()
        texts = as_text_array(strip_posts(sample.data, remove))
        return _split_off_test(texts, np.asarray(sample.target), list(sample.target_names), seed)
    path = None if data == "20news" else data
    if path is not None and not os.path.exists(os.path.expanduser(path)):
        raise FileNotFoundError(f"No text data at '{path}': pass one of {TEXT_DATA} or an existing path.")
    posts = load_20newsgroups(path, "all", remove=remove)  # one read of the archive or cache for both splits
    texts, targets = as_text_array(posts.data), np.asarray(posts.target)
    train = np.char.startswith(posts.filenames.astype(str), "20news-bydate-train/")
    return Data(texts[train], targets[train], texts[~train], targets[~train], list(posts.target_names))


def image_model(source, num_classes, input_size=None, dropout=0.2):
    """An `ImageClassifier` on `source`: a preset name (`"mobilenet_v2/imagenet"`,
    `"digits04_cnn"`), a TF-Hub handle, or a SavedModel folder."""
    from tfxfer.sources.applications import ARCHITECTURES
    from tfxfer.tasks.image_classifier import ImageClassifier

    kwargs = {"input_size": input_size} if source.partition("/")[0] in ARCHITECTURES and input_size else {}
    return ImageClassifier.from_preset(source, num_classes, dropout=dropout, **kwargs)


def text_model(source, texts, num_classes, dropout=0.2, seed=0):
    """A `TextClassifier` on `source`: `"embedded"` (the word vectors in
    `models/`), a word-vector file (word2vec, GloVe, fastText), or a TF-Hub
    text module handle or folder; the vocabulary is adapted on `texts`."""
    from tfxfer.sources.embedded_vectors import embedded_vectors_path
    from tfxfer.sources.hub import HubFeatures, is_remote_handle
    from tfxfer.tasks.text_classifier import TextClassifier

    if source == EMBEDDED_VECTORS:
        source = embedded_vectors_path()
    if is_remote_handle(source) or os.path.isdir(os.path.expanduser(source)):
        return TextClassifier(HubFeatures(source, input_dtype="string"), num_classes, dropout=dropout)
    if not os.path.isfile(os.path.expanduser(source)):
        raise FileNotFoundError(
            f"No word vectors at '{source}': pass '{EMBEDDED_VECTORS}', a word2vec/GloVe/fastText file, "
            "or a TF-Hub text module.")
    return TextClassifier.from_word_vectors(source, texts, num_classes, dropout=dropout, seed=seed)


def train_and_report(model, data, run, *, head_epochs, epochs, unfreeze, batch_size, learning_rate,
                     train=None, validation_fraction=0.1, export=True, seed=0, verbose="auto"):
    """Head on cached features, then `fine_tune`; test metrics, plots and
    export into `run` (a `RunFolder`). Rerunning resumes from `run.checkpoints`.

    Args:
        train: a `tf.data.Dataset` for fine-tuning (e.g. augmented images);
            by default the training arrays.

    Returns:
        dict of the test figures.
    """
    from tfxfer.export import export as export_model
    from tfxfer.transfer.feature_cache import fit_head
    from tfxfer.transfer.fine_tune import fine_tune

    (x_train, y_train), validation = data.held_out(validation_fraction, seed)
    started = time.perf_counter()
    histories = {"head": None, "fine_tune": None}
    if head_epochs:
        histories["head"] = fit_head(model, x_train, y_train, epochs=head_epochs, batch_size=batch_size,
                                     validation_data=validation, callbacks=[run.tensorboard("head")], verbose=verbose)
    if epochs:
        fit_data = (train(x_train, y_train),) if train else (x_train, y_train)
        histories["fine_tune"] = fine_tune(
            model, *fit_data, epochs=epochs, warmup_epochs=0, unfreeze=unfreeze, learning_rate=learning_rate,
            checkpoint_dir=run.checkpoints, validation_data=validation, verbose=verbose,
            batch_size=None if train else batch_size, callbacks=[run.tensorboard("fine_tune")],
        )["fine_tune"]
    if not model.compiled:
        model.compile()
    results = evaluate_model(model, data, run, batch_size)
    results["train_seconds"] = round(time.perf_counter() - started, 1)
    run.write_metrics(histories, results)
    run.write_plots(histories, data.y_test, np.asarray(results.pop("predictions")), data.class_names,
                    title="test")
    model.save(run.model)
    if export:
        if os.path.exists(run.export):
            import shutil

            shutil.rmtree(run.export)  # this run's own previous export
        export_model(model, run.export)
    return results


def evaluate_model(model, data, run=None, batch_size=64):
    """Test loss, accuracy, per-class accuracy and predictions of `model` on `data`."""
    loss, accuracy = model.evaluate(data.x_test, data.y_test, batch_size=batch_size, verbose=0)[:2]
    predictions = np.argmax(model.predict(data.x_test, batch_size=batch_size, verbose=0), axis=-1)
    per_class = {name: float(np.mean(predictions[data.y_test == c] == c)) if np.any(data.y_test == c) else None
                 for c, name in enumerate(data.class_names)}
    return {"test_loss": float(loss), "test_accuracy": float(accuracy), "test_examples": int(len(data.y_test)),
            "per_class_accuracy": per_class, "predictions": predictions.tolist()}


def load_run_model(run, safe_mode=True):
    """The model a run saved, loaded in Keras' safe mode unless told otherwise."""
    import keras

    import tfxfer  # noqa: F401  (registers tfxfer's layers for loading)

    if not os.path.isfile(run.model):
        raise FileNotFoundError(f"No model.keras in '{run.path}': did `tfxfer fit` finish there?")
    try:
        return keras.saving.load_model(run.model, safe_mode=safe_mode)
    except ValueError as error:
        if safe_mode and "safe_mode" in str(error):
            raise ValueError(
                f"'{run.model}' runs code from a SavedModel module, which safe mode refuses. If you trust "
                "the file, pass --no-safe-mode (tfxfer evaluate/export) or safe_mode=False."
            ) from error
        raise
