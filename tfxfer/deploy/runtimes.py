"""The optional converters and runtimes of `tfxfer[deploy]`, and one way to
run an exported artefact with its own runtime."""

import importlib
import importlib.metadata
import re

import numpy as np

from tfxfer.errors import ExportRefusedError, MissingPackageError

INSTALL = "pip install 'tfxfer[deploy]'"

# format -> the modules its export needs, beside TensorFlow (whose converter writes LiteRT files).
NEEDED = {
    "litert": {"ai_edge_litert": "ai-edge-litert"},
    "onnx": {"tf2onnx": "tf2onnx", "onnx": "onnx", "onnxruntime": "onnxruntime"},
}


def require(format):
    """Imports what exporting to `format` needs; one line naming the missing
    package and the install command otherwise (before any work)."""
    for module, package in NEEDED.get(format, {}).items():
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingPackageError(
                f"--format {format} needs the package {package}, which is not installed: {INSTALL}"
            ) from None


def runtime_version(format):
    """`"package version"` of the runtime that verifies `format`'s files."""
    package = {"litert": "ai-edge-litert", "onnx": "onnxruntime"}[format]
    return f"{package} {importlib.metadata.version(package)}"


def _dequantized(values, details):
    """Integer outputs of a quantized file as the floats they stand for."""
    scale, zero_point = details["quantization"]
    if scale and values.dtype.kind in "iu":
        return (values.astype(np.float32) - zero_point) * scale
    if values.dtype.kind == "S":
        return values.astype(object)
    return values


class LiteRTRunner:
    """A `.tflite` file's `serve` signature in the LiteRT interpreter
    (`ai_edge_litert`): `runner(inputs)` -> {output name: array}, quantized
    outputs dequantized, inputs cast to the signature's dtype."""

    def __init__(self, path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner("serve")
        (self.input_name, self.input_details), *_ = self.runner.get_input_details().items()
        self.output_details = self.runner.get_output_details()

    def __call__(self, inputs):
        inputs = np.asarray(inputs)
        if self.input_details["dtype"] is not np.object_ and inputs.dtype != object:
            inputs = inputs.astype(self.input_details["dtype"])
        outputs = self.runner(**{self.input_name: inputs})
        return {name: _dequantized(np.asarray(value), self.output_details[name]) for name, value in outputs.items()}


class OnnxRunner:
    """An `.onnx` file in ONNX Runtime (CPU): `runner(inputs)` -> {output name: array}."""

    def __init__(self, path, num_threads=None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0]
        self.output_names = [output.name for output in self.session.get_outputs()]

    def __call__(self, inputs):
        inputs = np.asarray(inputs)
        if self.input.type == "tensor(uint8)":
            inputs = inputs.astype(np.uint8)
        outputs = self.session.run(None, {self.input.name: inputs})
        return dict(zip(self.output_names, outputs, strict=True))


RUNNERS = {"litert": LiteRTRunner, "onnx": OnnxRunner}


def load_runner(format, path, num_threads=None):
    """The runner of an exported `format` file, or a one-line error saying why its runtime cannot load it."""
    try:
        return RUNNERS[format](path, num_threads)
    except Exception as error:  # RuntimeError, ValueError, onnxruntime's own classes
        if not isinstance(error, (RuntimeError, ValueError)) and not type(error).__module__.startswith("onnxruntime"):
            raise
        raise _load_failure(format, error) from None


def _load_failure(format, error):
    """A ValueError naming the ops the runtime lacks (the model cannot go to this format), else a RuntimeError."""
    found = re.findall(r"No Op registered for (\w+)|Node number \d+ \((Flex\w+)\)", str(error))
    ops = sorted({name for pair in found for name in pair if name})
    if ops:
        return ValueError(
            f"{runtime_version(format)} has no kernels for {', '.join(ops)}, which this model computes in its graph "
            "(a text model's vectorizer): export it with --format saved_model, which serves raw strings."
        )
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ExportRefusedError(f"{runtime_version(format)} cannot load the exported file: {message}")
