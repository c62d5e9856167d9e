"""ONNX files of a tfxfer model, converted from its SavedModel export by
tf2onnx (what Keras 3's own `format="onnx"` uses on TensorFlow); the class
names and input details travel in the file's `metadata_props`."""

import contextlib
import json
import logging
import os
import re
import tempfile
import warnings

FILE = "model.onnx"
OPSET = 17  # ONNX Runtime 1.17 and newer run it everywhere


@contextlib.contextmanager
def _quiet():
    """tf2onnx logs every rewrite and TensorFlow warns of its v1 freezing API."""
    # tf2onnx's own logger; TensorFlow's ("designed for TensorFlow v1"); the
    # root logger, where onnxruntime.quantization advises pre-processing.
    loggers = [logging.getLogger(name) for name in ("tf2onnx", "tensorflow", "")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def write(serving_folder, path, quantize, labels, metadata):
    """Writes `serving_folder`'s `serve` endpoint to `path` as ONNX (outputs
    named as the SavedModel's), `quantize` "none" or "dynamic" (int8
    weights, ONNX Runtime's `quantize_dynamic`)."""
    import onnx
    from tf2onnx import convert, tf_loader

    with _quiet():
        graph, inputs, outputs, renames = tf_loader.from_saved_model(
            serving_folder, None, None, tag="serve", signatures=["serve"], return_tensors_to_rename=True
        )
        proto, _ = convert.from_graph_def(
            graph, input_names=inputs, output_names=outputs, opset=OPSET, tensors_to_rename=renames
        )
    for key, value in {"labels": json.dumps(labels), "tfxfer": json.dumps(metadata)}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    if quantize != "dynamic":
        onnx.save(proto, path)
        return
    from onnxruntime.quantization import quantize_dynamic

    with tempfile.TemporaryDirectory() as folder:
        float_path = os.path.join(folder, FILE)
        onnx.save(proto, float_path)
        with _quiet():
            quantize_dynamic(float_path, path)


def read_metadata(path):
    """`(labels, metadata)` from an ONNX file's `metadata_props`."""
    import onnx

    props = {entry.key: entry.value for entry in onnx.load(path, load_external_data=False).metadata_props}
    return json.loads(props["labels"]), json.loads(props["tfxfer"])


def missing_ops(error):
    """The ops an ONNX Runtime load error names as unregistered."""
    return sorted(set(re.findall(r"No Op registered for (\w+)", str(error))))
