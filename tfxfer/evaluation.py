"""Test figures of a trained classifier, and loading a saved one."""

import os
import re
import warnings
import zipfile

import numpy as np

from tfxfer.tasks.labels import ClassLabels


def evaluate_model(model, data, batch_size=64):
    """Test figures of `model` on `data`'s test split (a `tfxfer.data.Data`), see `test_figures`."""
    return test_figures(model, data.x_test, data.y_test, data.class_names, batch_size)


def test_figures(model, x, y, class_names, batch_size=64):
    """Loss, accuracy, macro-F1, per-class precision/recall/F1 and the
    predictions of `model` on `(x, y)`. For a multi-label model (multi-hot
    `y`): subset accuracy (`test_accuracy`: every label of an example
    right), micro- and macro-F1 at the model's per-class thresholds."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    loss = model.evaluate(x, y, batch_size=batch_size, verbose=0)
    loss = loss[0] if isinstance(loss, list) else loss
    labels = getattr(model, "class_labels", None) or ClassLabels.numbered(len(class_names))
    predictions = labels.predicted(labels.probabilities(model.predict(x, batch_size=batch_size, verbose=0)))
    y = np.asarray(y)
    classes = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predictions, labels=None if labels.multi_label else classes, zero_division=0
    )
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
    }
    present = support > 0  # macro-F1 over the classes the test data has
    figures = {
        "test_loss": float(loss),
        "test_accuracy": float(np.mean(np.all(predictions == y, axis=-1) if labels.multi_label else predictions == y)),
        "test_examples": int(len(y)),
        "macro_f1": float(np.mean(f1[present])) if present.any() else 0.0,
        "per_class": per_class,
    }
    if labels.multi_label:
        figures["micro_f1"] = float(f1_score(y, predictions, average="micro", zero_division=0))
    else:
        figures["per_class_accuracy"] = {
            name: float(recall[c]) if support[c] else None for c, name in enumerate(class_names)
        }
    figures["predictions"] = predictions.tolist()
    return figures


def load_model(path, safe_mode=True):
    """A `.keras` file saved from a tfxfer model (or any Keras model), loaded
    in Keras' safe mode unless told otherwise; what safe mode refuses is
    said in one line, with the option that loads it anyway."""
    import keras

    import tfxfer.methods  # noqa: F401  (registers tfxfer's layers and models for loading)
    import tfxfer.tasks  # noqa: F401

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No model file at '{path}': did `tfxfer fit` finish there?")
    if path.endswith(".keras") and not zipfile.is_zipfile(path):  # Keras would call it "File not found"
        raise ValueError(
            f"'{path}' is damaged: not a whole .keras file ({os.path.getsize(path):,} bytes, cut short or "
            "overwritten). Rerun the fit that wrote it (`tfxfer fit ... --overwrite` in a run folder)."
        )
    try:
        with warnings.catch_warnings():
            # A model compiled but never trained by Keras (a solved head) saves an optimizer without its
            # slots; Keras then warns on every load. tfxfer resumes from checkpoints, never from this state.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer", category=UserWarning)
            return keras.saving.load_model(path, safe_mode=safe_mode)
    except ValueError as error:
        if safe_mode and "safe_mode" in str(error):
            reason = " ".join(str(error).split()).split(". ")[0].rstrip(".") + "."  # Keras' first sentence names it
            raise ValueError(
                f"Keras' safe mode refuses part of '{path}': {reason} Loading it anyway runs that "
                "code: only if you trust the file, pass --no-safe-mode (tfxfer evaluate/export) or safe_mode=False."
            ) from error
        raise
    except TypeError as error:  # Keras: "Could not locate class 'system'. ... Full object config: {...}"
        if "Could not locate" not in str(error):
            raise
        found = re.search(r"'module': '([^']*)', 'class_name': '([^']*)'", str(error))
        named = f"{found.group(1)}.{found.group(2)}" if found else str(error).split(".")[0]
        raise ValueError(
            f"'{path}' asks for {named}, which is no Keras or tfxfer class: it was not saved by tfxfer, or names "
            "code from elsewhere (refused, never imported). Load it with the code that saved it, if you trust it."
        ) from error
