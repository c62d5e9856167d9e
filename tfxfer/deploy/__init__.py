"""Artefacts for where a model will run: a SavedModel (TensorFlow Serving),
a LiteRT file (phones, microcontrollers) or an ONNX file (ONNX Runtime),
each reloaded with its own runtime and compared with the Keras model
before it appears. See docs/deploy.md."""

import importlib.metadata
import json
import os
import tempfile

import numpy as np

from tfxfer.deploy import litert, onnx
from tfxfer.deploy.runtimes import load_runner, require, runtime_version
from tfxfer.errors import ExportRefusedError, MissingPackageError
from tfxfer.exporting import export as export_saved_model
from tfxfer.exporting import serving_inputs, serving_outputs, write_endpoint, write_labels, write_verified

__all__ = [
    "FORMATS",
    "QUANTIZATIONS",
    "ExportRefusedError",
    "MissingPackageError",
    "export",
    "load_runner",
    "read_metadata",
    "resolve_quantize",
    "serving_outputs",
]

FORMATS = ("saved_model", "litert", "onnx")
QUANTIZATIONS = {
    "saved_model": ("none",),
    "litert": ("none", "float16", "dynamic", "int8", "int8-only"),
    "onnx": ("none", "dynamic"),
}
FILES = {"litert": litert.FILE, "onnx": onnx.FILE}
# A float32 file computes what Keras does, in another order: its
# probabilities may differ by this much. A float16 file's weights are
# rounded: its top class may differ only where Keras's is not clear, its
# probability ahead of the runner-up by less than FLOAT16_MARGIN.
FLOAT32_TOLERANCE = 1e-3
FLOAT16_MARGIN = 0.1
FLOAT = ("none", "float16")
INT8 = ("int8", "int8-only")
# A quantized file that agrees less than this with Keras is broken, not approximate.
QUANTIZED_AGREEMENT = 0.9
MANIFEST = "manifest.json"


def resolve_quantize(format, quantize, model, representative_data):
    """`quantize` checked against `format`; `"auto"` resolved: for LiteRT,
    int8 for an image model given representative images (what mobile
    accelerators run fastest, under a third of the size), float16 otherwise
    (half the size; dynamic-range changes too many of MobileNetV2's top
    classes); none elsewhere."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}. Received: format={format!r}")
    if quantize == "auto":
        if format != "litert":
            return "none"
        is_image = model.inputs[0].dtype != "string"
        return "int8" if is_image and representative_data is not None else "float16"
    if quantize not in QUANTIZATIONS[format]:
        raise ValueError(
            f"--format {format} takes --quantize {' or '.join(('auto', *QUANTIZATIONS[format]))}. "
            f"Received: quantize={quantize!r}"
            + (" (int8 and float16: use --format litert)" if format == "onnx" else "")
        )
    if quantize in INT8 and representative_data is None:
        raise ValueError(
            f"quantize={quantize!r} calibrates on representative images: pass representative_data "
            "(a few hundred raw training images, as the model takes them)"
        )
    return quantize


def export(model, path, format="saved_model", quantize="auto", representative_data=None, check_data=None, atol=1e-5):
    """Exports a classifier to `path` (a folder) as `format`, verified.

    `"saved_model"` is `tfxfer.exporting.export` (serving raw images or
    strings). `"litert"` writes `model.tflite`, `"onnx"` `model.onnx`; both
    serve what the SavedModel serves (`probabilities`, `top_ids`,
    `top_names`, `top_probabilities`), carry the class names and input
    details inside the file (`read_metadata`), and have `labels.txt` and
    `manifest.json` beside them. The file is loaded with its own runtime
    (ai-edge-litert, onnxruntime) and run on `check_data` (`x` or `(x, y)`;
    by default random inputs, or the representative images for int8): the
    top-1 agreement with Keras, the largest probability difference and,
    given labels, both accuracies go into the manifest. A float file that
    differs beyond `FLOAT32_TOLERANCE` (float16: changes a clear top class,
    see `FLOAT16_MARGIN`), or a quantized one agreeing on fewer than 90 %
    of the inputs, is refused and nothing is kept.

    Args:
        model: a tfxfer task model (class names inside).
        path: the folder to write; it must not exist.
        format: "saved_model", "litert" or "onnx".
        quantize: "auto", "none", "float16", "dynamic", "int8" or
            "int8-only" (LiteRT; ONNX takes none and dynamic); see
            `resolve_quantize`. int8 keeps up to three layers in float where
            that holds the top class (`litert.convert_int8`, named in the
            manifest's `float_layers`); int8-only never does, for
            integer-only hardware. Both store per tensor the layers for
            which that changes no calibration image's top class
            (`per_tensor_layers`); float16 keeps weights under 1,024
            values in float32.
        representative_data: raw images to calibrate int8 on (a few hundred
            training images); the int8 file takes images of their size.
        check_data: held-back inputs, or `(inputs, labels)`, to verify on.
        atol: the SavedModel's reload check tolerance (raise it for a mixed
            precision model).

    Returns:
        `path`; None on a worker other than the chief, which writes nothing.

    Example:

    >>> import numpy as np, tempfile, os, tfxfer
    >>> model = tfxfer.ImageClassifier.from_preset("digits04_cnn", 10)
    >>> folder = os.path.join(tempfile.mkdtemp(), "digits")
    >>> tfxfer.export(model, folder, format="litert", quantize="none")  # doctest: +ELLIPSIS
    '...digits'
    >>> sorted(os.listdir(folder))
    ['labels.txt', 'manifest.json', 'model.tflite']
    """
    path = os.fspath(path)
    if os.path.exists(path):
        raise FileExistsError(f"'{path}' already exists; remove it or choose another folder.")
    quantize = resolve_quantize(format, quantize, model, representative_data)
    if format == "saved_model":
        return export_saved_model(model, path, atol=atol)
    require(format)
    if not getattr(model, "class_names", None):
        raise ValueError(
            f"--format {format} exports a classifier with class names (a tfxfer ImageClassifier or TextClassifier)"
        )
    inputs, labels = _check_inputs(model, quantize, representative_data, check_data)
    metadata = _metadata(model, format, quantize, representative_data)

    def write(folder):
        _write_file(model, folder, format, quantize, representative_data, metadata)
        write_labels(model, folder)

    def verify(folder):
        runner = load_runner(format, os.path.join(folder, FILES[format]))
        figures = _compare(model, runner, inputs, labels, quantize, folder)
        manifest = {**metadata, "verification": {**figures, "runtime": runtime_version(format)}}
        with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as file:
            json.dump(manifest, file, indent=2)

    return write_verified(path, write, verify, model.distribute_strategy)


def read_metadata(path):
    """`(class names, metadata)` stored inside an exported `.tflite` or `.onnx` file."""
    path = os.fspath(path)
    reader = litert.read_metadata if path.endswith(".tflite") else onnx.read_metadata
    return reader(path)


def _write_file(model, folder, format, quantize, representative, metadata):
    with tempfile.TemporaryDirectory() as serving:
        if quantize in INT8:
            serve, spec = litert.int8_endpoint(model, np.shape(representative)[1:])
            write_endpoint(model, serving, serve, spec)
            reference = np.concatenate([_keras_probabilities(model, batch) for batch in _batches(representative)])
            flatbuffer, float_layers, per_tensor = litert.convert_int8(
                serving, representative, reference.argmax(1), integer_only=quantize == "int8-only"
            )
            metadata["float_layers"] = float_layers
            metadata["per_tensor_layers"] = per_tensor
            if float_layers:  # TensorFlow's converter keeps such a file's input in float
                metadata["input"]["dtype"] = "float32"
        else:
            spec = serving_inputs(model)[0]
            write_endpoint(model, serving, lambda inputs: serving_outputs(model, inputs), spec)
            if format == "onnx":
                onnx.write(serving, os.path.join(folder, onnx.FILE), quantize, model.class_names, metadata)
                return
            flatbuffer = litert.convert(serving, quantize)
    with open(os.path.join(folder, litert.FILE), "wb") as file:
        file.write(litert.with_metadata(flatbuffer, model.class_names, metadata))


def _check_inputs(model, quantize, representative, check_data):
    """`(inputs, labels or None)` the export is verified on."""
    if check_data is None:
        if quantize in INT8:  # random pixels are nothing like what it was calibrated on
            return np.asarray(representative), None
        return serving_inputs(model)[1][0], None
    if isinstance(check_data, tuple):
        inputs, labels = check_data
        return np.asarray(inputs), np.asarray(labels)
    return np.asarray(check_data), None


def _metadata(model, format, quantize, representative):
    """What a consumer of the file needs: its input, outputs and classes."""
    text = model.inputs[0].dtype == "string"
    if text:
        inputs = {"name": "texts", "dtype": "string", "shape": [None], "raw": "one text per row"}
    else:
        shape = list(np.shape(representative)[1:]) if quantize in INT8 else [None, None, model.input_shape[-1]]
        inputs = {
            "name": "images",
            "dtype": "uint8",
            "shape": [None, *shape],
            "value_range": [0, 255],
            "preprocessing": "inside the graph (resize to the source's size, its scaling)",
        }
        if representative is not None:
            inputs["training_value_range"] = [int(np.min(representative)), int(np.max(representative))]
    return {
        "format": format,
        "file": FILES[format],
        "quantize": quantize,
        "input": inputs,
        "outputs": ["probabilities", "top_ids", "top_names", "top_probabilities"]
        + (["predicted"] if model.multi_label else []),
        "labels": list(model.class_names),
        "multi_label": bool(model.multi_label),
        "tfxfer_version": importlib.metadata.version("tfxfer"),
    }


def _keras_probabilities(model, inputs):
    return np.asarray(serving_outputs(model, inputs)["probabilities"])


def _batches(inputs, size=32):
    return (inputs[start : start + size] for start in range(0, len(inputs), size))


def _compare(model, runner, inputs, labels, quantize, folder):
    """Runs the file and the Keras model on `inputs`: the manifest's figures, or a refusal."""
    want, got = [], []
    for batch in _batches(inputs):
        want.append(_keras_probabilities(model, batch))
        served = runner(batch)
        names = np.asarray(model.class_names, dtype=object)[served["top_ids"][:, 0]]
        if [str(n, "utf-8") if isinstance(n, bytes) else str(n) for n in served["top_names"][:, 0]] != list(names):
            raise ExportRefusedError(
                f"The file in '{folder}' names other classes than its ids say; nothing was written."
            )
        got.append(served["probabilities"])
    want, got = np.concatenate(want), np.concatenate(got).astype(np.float32)
    figures = {
        "examples": len(inputs),
        "data": "given" if labels is not None else "unlabelled check inputs",
        "top1_agreement": float(np.mean(want.argmax(1) == got.argmax(1))),
        "max_probability_difference": float(np.max(np.abs(want - got))),
    }
    if labels is not None and labels.ndim == 1:
        figures["accuracy"] = float(np.mean(got.argmax(1) == labels))
        figures["keras_accuracy"] = float(np.mean(want.argmax(1) == labels))
    if quantize == "none" and figures["max_probability_difference"] > FLOAT32_TOLERANCE:
        raise ExportRefusedError(
            f"The float32 file in '{folder}' differs from the Keras model (largest probability difference "
            f"{figures['max_probability_difference']:.3g} > {FLOAT32_TOLERANCE}); nothing was written."
        )
    top_two = np.sort(want, axis=1)[:, -2:]
    clear = (top_two[:, 1] - top_two[:, 0]) >= FLOAT16_MARGIN
    if quantize == "float16" and np.any((want.argmax(1) != got.argmax(1)) & clear):
        raise ExportRefusedError(
            f"The float16 file in '{folder}' changes the top class of inputs the Keras model is clear about "
            f"(ahead by {FLOAT16_MARGIN} or more); nothing was written."
        )
    if quantize not in FLOAT and figures["top1_agreement"] < QUANTIZED_AGREEMENT:
        raise ExportRefusedError(
            f"The {quantize}-quantized file agrees with the Keras model on only "
            f"{100 * figures['top1_agreement']:.1f} % of {len(inputs)} inputs; nothing was written. "
            f"Try --quantize {' or '.join(q for q in ('int8', 'float16') if q != quantize)}."
        )
    return figures
