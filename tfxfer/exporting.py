"""Writing trained models as artefacts others can reuse, verified on reload."""

import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from tfxfer._compat import SavedModelRoot
from tfxfer.distribute import is_chief
from tfxfer.walk import walk_layers


class _ReusableSavedModel(SavedModelRoot):
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


def write_verified(path, write, verify, strategy):
    """Writes with `write(folder)` into a staging folder beside `path`, runs
    `verify(folder)`, and only then renames it to `path`: a failed or
    interrupted export never leaves a model that looks complete. In a
    multi-worker cluster only the chief writes; the others return None."""
    if not is_chief(strategy):
        return None
    path = os.fspath(path)
    if os.path.exists(path):
        raise FileExistsError(f"'{path}' already exists; remove it or choose another folder.")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        write(staging)
        verify(staging)
        os.chmod(staging, 0o755)  # mkdtemp makes it private
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _check_close(expected, got, folder, atol):
    if expected.dtype.kind not in "fc":  # names, ids, decisions: equal, or not
        if not np.array_equal(expected, got):
            raise RuntimeError(
                f"The model reloaded from '{folder}' serves other classes than the Keras model; nothing was written."
            )
        return
    if not np.allclose(expected, got, atol=atol):
        raise RuntimeError(
            f"The model reloaded from '{folder}' differs from the Keras model "
            f"(max abs difference {np.max(np.abs(expected - got)):.3g}); "
            "nothing was written."
        )


def export_hub_module(model, path, input_shape, input_dtype="float32", atol=1e-5):
    """Exports a Keras model as a TF-Hub-format (reusable) SavedModel.

    The model's variables are exported with their trainability, and
    `__call__` accepts `training` so that BatchNorm and dropout behave as in
    Keras when the module is fine-tuned. The module is written to a temporary
    folder, reloaded and compared with the Keras model on random inputs; only
    then is it moved to `path`.

    Args:
        model: a built Keras model.
        path: the folder to write (must not exist).
        input_shape: the input shape without the batch dimension.
        input_dtype: the input dtype of the module's `__call__`.
        atol: tolerance of the reload check.

    Returns:
        `path`; None on a worker other than the chief, which writes nothing.
    """
    spec = tf.TensorSpec((None, *input_shape), tf.as_dtype(input_dtype))
    if spec.dtype == tf.string:
        sample = _sample_texts(model)
    else:
        sample = np.random.default_rng(0).uniform(0, 1, size=(4, *input_shape)).astype(spec.dtype.as_numpy_dtype)

    def write(folder):
        tf.saved_model.save(_ReusableSavedModel(model, spec), folder)

    def verify(folder):
        reloaded = tf.saved_model.load(folder)
        got = reloaded(tf.constant(sample), training=False).numpy()
        _check_close(np.asarray(model(sample, training=False)), got, folder, atol)

    return write_verified(path, write, verify, model.distribute_strategy)


def _check_sizes(model):
    """Image sizes to check the export on: two when the model takes any size."""
    height, width, channels = model.input_shape[1:]
    if height is None or width is None:
        return [(32, 32, channels), (45, 37, channels)]
    return [(height, width, channels)]


def _vocabulary_words(model, count=20):
    import keras

    for layer in walk_layers(model):
        if isinstance(layer, keras.layers.TextVectorization):
            return layer.get_vocabulary()[2 : 2 + count]
    return []


def _sample_texts(model):
    """Texts to check a text model's export on: empty, unknown and known words."""
    words = _vocabulary_words(model)
    texts = ["", "Words it has never seen: zyxw qvvz!", " ".join(words), " ".join(reversed(words[:7]))]
    return np.array(texts, dtype=object)


def serving_inputs(model):
    """The serving input spec and the batches the export is checked on.

    Images: uint8 of any size (two sizes checked when the model resizes);
    texts: a batch of raw strings, including an empty one and known words.
    """
    if model.inputs[0].dtype == "string":
        return tf.TensorSpec((None,), tf.string, name="texts"), [_sample_texts(model)]
    if len(model.input_shape) != 4:
        raise ValueError(
            "tfxfer.export serves raw images (batch, height, width, channels) or raw "
            f"strings (batch,). Received: input_shape={model.input_shape}, dtype {model.inputs[0].dtype}"
        )
    spec = tf.TensorSpec((None, None, None, model.input_shape[-1]), tf.uint8, name="images")
    rng = np.random.default_rng(0)
    return spec, [rng.integers(0, 256, size=(3, *size), dtype=np.uint8) for size in _check_sizes(model)]


TOP_K = 5  # the classes the serving signature names, at most


def serving_outputs(model, inputs):
    """What the export serves for `inputs`: for a model with class names
    (every tfxfer task model), `probabilities`, the `top_ids`, `top_names`
    and `top_probabilities` of the best classes (at most `TOP_K`), and for a
    multi-label model `predicted` (each class at its threshold); a dict of
    probabilities per task for a `MultiTaskClassifier`."""
    return named_outputs(model, model(inputs, training=False))


def named_outputs(model, logits):
    """`serving_outputs` of `model`'s `logits`."""
    import keras

    labels = getattr(model, "class_labels", None)
    if labels is None or isinstance(logits, dict):
        return keras.tree.map_structure(tf.nn.softmax, logits)
    probabilities = tf.sigmoid(logits) if labels.multi_label else tf.nn.softmax(logits)
    top = tf.math.top_k(probabilities, k=min(TOP_K, len(labels.names)))
    outputs = {
        "probabilities": probabilities,
        "top_ids": top.indices,
        "top_names": tf.gather(tf.constant(labels.names), top.indices),
        "top_probabilities": top.values,
    }
    if labels.multi_label:
        outputs["predicted"] = probabilities >= tf.constant(labels.threshold_array())
    return outputs


def write_endpoint(model, folder, serve, spec):
    """A SavedModel in `folder` whose `serve` endpoint is `serve(inputs)` on `spec`."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature=[spec])
    archive.write_out(folder, verbose=False)


def write_labels(model, folder):
    """`labels.txt` in `folder`: one class name per line, in label order."""
    names = getattr(model, "class_names", None)
    if names:
        with open(os.path.join(folder, "labels.txt"), "w", encoding="utf-8") as file:
            file.write("".join(f"{name}\n" for name in names))


def export(model, path, atol=1e-5):
    """Exports a classifier as a SavedModel that serves raw inputs.

    The `serve` endpoint (also `serving_default`) takes a batch of uint8
    images (of any size when the model resizes itself) or, for a text model,
    a batch of raw strings (the vectorizer runs inside the graph), and
    returns the class probabilities and the best classes' names and ids
    (`serving_outputs`); `labels.txt` beside it names the classes. The
    export is reloaded and each output compared with the Keras model's (on
    images of two sizes, or on texts) before it appears at `path`.

    Returns:
        `path`; None on a worker other than the chief, which writes nothing.
    """
    import keras

    spec, samples = serving_inputs(model)

    def serve(inputs):
        return serving_outputs(model, inputs)

    def write(folder):
        write_endpoint(model, folder, serve, spec)
        write_labels(model, folder)

    def verify(folder):
        reloaded = tf.saved_model.load(folder)
        for inputs in samples:
            expected = keras.tree.flatten(serve(tf.constant(inputs)))
            served = keras.tree.flatten(reloaded.serve(tf.constant(inputs)))
            for want, got in zip(expected, served, strict=True):
                _check_close(np.asarray(want), np.asarray(got), folder, atol)

    return write_verified(path, write, verify, model.distribute_strategy)
