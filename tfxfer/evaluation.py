"""Test figures of a trained classifier, and loading a saved one."""

import os
import zipfile

import numpy as np


def evaluate_model(model, data, batch_size=64):
    """Test loss, accuracy, per-class accuracy and predictions of `model` on `data` (a `tfxfer.data.Data`)."""
    loss, accuracy = model.evaluate(data.x_test, data.y_test, batch_size=batch_size, verbose=0)[:2]
    predictions = np.argmax(model.predict(data.x_test, batch_size=batch_size, verbose=0), axis=-1)
    per_class = {
        name: float(np.mean(predictions[data.y_test == c] == c)) if np.any(data.y_test == c) else None
        for c, name in enumerate(data.class_names)
    }
    return {
        "test_loss": float(loss),
        "test_accuracy": float(accuracy),
        "test_examples": int(len(data.y_test)),
        "per_class_accuracy": per_class,
        "predictions": predictions.tolist(),
    }


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
        return keras.saving.load_model(path, safe_mode=safe_mode)
    except ValueError as error:
        if safe_mode and "safe_mode" in str(error):
            reason = " ".join(str(error).split()).split(". ")[0].rstrip(".") + "."  # Keras' first sentence names it
            raise ValueError(
                f"Keras' safe mode refuses part of '{path}': {reason} Loading it anyway runs that "
                "code: only if you trust the file, pass --no-safe-mode (tfxfer evaluate/export) or safe_mode=False."
            ) from error
        raise
