"""Writing trained models as artefacts others can reuse, verified on reload."""

import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf


class _ReusableSavedModel(tf.__internal__.tracking.AutoTrackable):
    """The object TF-Hub's reusable SavedModel API describes.

    `__call__(inputs, training=False)`, `variables`, `trainable_variables` and
    `regularization_losses`: what `hub.load` users and `tfxfer.HubFeatures`
    expect of a module.
    """

    def __init__(self, model, input_spec):
        self._model = model
        self.variables = [v.value for v in model.variables]
        self.trainable_variables = [v.value for v in model.trainable_variables]
        self.regularization_losses = []

        @tf.function
        def call(inputs, training=False):
            return model(inputs, training=training)

        # Trace both modes: `training` is a Python bool in Keras 3 layers.
        for training in (False, True):
            call.get_concrete_function(input_spec, training=training)
        self.__call__ = call


def export_hub_module(model, path, input_shape, input_dtype="float32", atol=1e-5):
    """Exports a Keras model as a TF-Hub-format (reusable) SavedModel.

    The model's variables are exported with their trainability, and
    `__call__` accepts `training` so that BatchNorm and dropout behave as in
    Keras when the module is fine-tuned. The module is written to a temporary
    folder, reloaded and compared with the Keras model on random inputs; only
    then is it moved to `path`, so a failed or interrupted export never
    leaves a module that looks complete.

    Args:
        model: a built Keras model.
        path: the folder to write (must not exist).
        input_shape: the input shape without the batch dimension.
        input_dtype: the input dtype of the module's `__call__`.
        atol: tolerance of the reload check.

    Returns:
        `path`.
    """
    path = os.fspath(path)
    if os.path.exists(path):
        raise FileExistsError(
            f"'{path}' already exists; remove it or choose another folder."
        )
    spec = tf.TensorSpec((None, *input_shape), tf.as_dtype(input_dtype))
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        tf.saved_model.save(_ReusableSavedModel(model, spec), staging)
        _verify_reload(model, staging, spec, atol)
        os.chmod(staging, 0o755)  # mkdtemp makes it private
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _verify_reload(model, folder, spec, atol):
    rng = np.random.default_rng(0)
    sample = rng.uniform(0, 1, size=(4, *spec.shape[1:])).astype(spec.dtype.as_numpy_dtype)
    expected = np.asarray(model(sample, training=False))
    reloaded = tf.saved_model.load(folder)
    got = reloaded(tf.constant(sample), training=False).numpy()
    if not np.allclose(expected, got, atol=atol):
        raise RuntimeError(
            f"The module reloaded from '{folder}' differs from the Keras model "
            f"(max abs difference {np.max(np.abs(expected - got)):.3g}); "
            "nothing was written."
        )
