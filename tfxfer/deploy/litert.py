"""LiteRT (formerly TFLite) files of a tfxfer model: float32, float16,
dynamic-range and full-integer (int8) quantization; the class names and
input details travel inside the file."""

import contextlib
import csv
import io
import json
import math
import os
import re
import tempfile
import warnings
import zipfile

import numpy as np
import tensorflow as tf

from tfxfer import _compat
from tfxfer.exporting import named_outputs

FILE = "model.tflite"
PIXEL_RANGE = (0.0, 255.0)
# int8: a feature's scale in the head's standardisation is floored at this
# share of the median scale, or one that hardly varies takes the whole int8 range.
SCALE_FLOOR = 0.05
# int8 (not int8-only): below this top-1 agreement with the float model on
# the representative images, the layers quantization hurts most are kept in
# float, one at a time, up to MAX_FLOAT_LAYERS, skipping any that would grow
# the file by more than FLOAT_LAYER_GROWTH (a share of its size).
INT8_AGREEMENT = 0.95
MAX_FLOAT_LAYERS = 3
FLOAT_LAYER_GROWTH = 0.02
DEBUG_EXAMPLES = 50
# float16: weights with fewer values stay float32 (the threshold under which
# LiteRT's own weight quantizer leaves a tensor alone). They cost little
# (biases, the first convolutions: +0.8 % of MobileNetV2's file), and their
# rounding moves the output most: of all MobileNetV2's layers, rounding its
# first depthwise convolution (288 values) changed the most top classes.
FLOAT16_MIN_ELEMENTS = 1024
# int8: a layer with fewer output channels stays per channel. Per tensor saves
# 24 bytes a channel, under 6 KB here: too little to risk a top class the
# calibration images, a few dozen for a small dataset, did not show.
PER_TENSOR_MIN_CHANNELS = 256


def convert(serving_folder, quantize):
    """The LiteRT flatbuffer of `serving_folder`'s `serve` endpoint (the
    SavedModel export) at `quantize` "none", "float16" or "dynamic". A
    float16 file keeps its weights of fewer than `FLOAT16_MIN_ELEMENTS`
    values in float32 (`_small_weights_in_float32`)."""
    if quantize == "float16":
        rounded = _converted(_converter(serving_folder, "float16"))
        return _small_weights_in_float32(rounded, convert(serving_folder, "none"))
    return _converted(_converter(serving_folder, quantize))


def _converter(serving_folder, quantize):
    converter = tf.lite.TFLiteConverter.from_saved_model(serving_folder, signature_keys=["serve"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize in ("dynamic", "float16"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter


def _small_weights_in_float32(float16_file, float32_file):
    """`float16_file` with each float16 weight of fewer than
    `FLOAT16_MIN_ELEMENTS` values swapped for its float32 original in
    `float32_file` (the same graph converted without quantization) and its
    DEQUANTIZE op dropped. TensorFlow's converter rounds every weight; this
    is the one choice it does not offer."""
    half, full = _compat.read_litert(float16_file), _compat.read_litert(float32_file)
    float16 = _compat.litert_tensor_type("FLOAT16")
    for graph, original in zip(half.subgraphs, full.subgraphs, strict=True):
        is_dequantize = [_compat.litert_op_name(half, op) == "DEQUANTIZE" for op in graph.operators]
        producers = {op.outputs[0]: op for op, flag in zip(graph.operators, is_dequantize, strict=True) if flag}
        operators = [op for op, flag in zip(graph.operators, is_dequantize, strict=True) if not flag]
        if [_compat.litert_op_name(half, op) for op in operators] != [
            _compat.litert_op_name(full, op) for op in original.operators
        ]:
            return float16_file  # not the same graph after all: every weight stays float16
        dropped = {}
        for operator, twin in zip(operators, original.operators, strict=True):
            for index, twin_index in zip(operator.inputs, twin.inputs, strict=True):
                dequantize = producers.get(index)
                if dequantize is None or id(dequantize) in dropped:
                    continue
                rounded = graph.tensors[dequantize.inputs[0]]
                if rounded.type != float16 or math.prod(graph.tensors[index].shape) >= FLOAT16_MIN_ELEMENTS:
                    continue
                data = full.buffers[original.tensors[twin_index].buffer].data
                graph.tensors[index].buffer = _compat.add_litert_buffer(half, data)
                half.buffers[rounded.buffer].data = None
                dropped[id(dequantize)] = dequantize
        graph.operators = [op for op in graph.operators if id(op) not in dropped]
    return _compat.write_litert(half)


def int8_endpoint(model, image_shape):
    """`(serve, spec)` for full-integer quantization: images of `image_shape`
    whose float input is pinned to the pixel range (so the file takes raw
    uint8 pixels, scale 1, zero point 0), and the head's feature
    standardisation folded into its weights (see `SCALE_FLOOR`)."""
    logits_of = _folded_logits(model)

    def serve(images):
        images = tf.quantization.fake_quant_with_min_max_args(images, *PIXEL_RANGE, num_bits=8)
        return named_outputs(model, logits_of(images))

    return serve, tf.TensorSpec((None, *image_shape), tf.float32, name="images")


def convert_int8(serving_folder, representative, reference_ids, integer_only=False):
    """`(flatbuffer, float layers, per-tensor layers)`: the int8 LiteRT file
    of `int8_endpoint`'s SavedModel, calibrated on `representative` (raw
    images, one at a time), uint8 in and out. `integer_only`: every op in
    int8 (what integer-only hardware runs). Otherwise, where its top class
    agrees with `reference_ids` (the Keras model's, on `representative`) on
    less than `INT8_AGREEMENT`, the layers with the largest quantization
    error (the TensorFlow quantization debugger's RMSE over scale) run in
    float, named in the second item; such a file takes float32 pixels
    (0-255), as the debugger's converter writes no uint8 input. Then the
    layers `_per_tensor_where_harmless` stores with one scale are counted
    in the third item."""
    samples = np.asarray(representative, dtype=np.float32)
    flatbuffer, float_layers = _int8_file(serving_folder, samples, reference_ids, integer_only)
    flatbuffer, per_tensor = _per_tensor_where_harmless(flatbuffer, samples, reference_ids)
    return flatbuffer, float_layers, per_tensor


def _int8_file(serving_folder, samples, reference_ids, integer_only):
    flatbuffer = _converted(_int8_converter(serving_folder, samples, integer_only=True))
    if integer_only:
        return flatbuffer, []
    agreement = _agreement(flatbuffer, samples, reference_ids)
    if agreement >= INT8_AGREEMENT:
        return flatbuffer, []
    kept, best = [], (agreement, flatbuffer, [])
    for layer in _worst_layers(serving_folder, samples):
        candidate = _with_float_layers(serving_folder, samples, [*kept, layer])
        if len(candidate) > (1 + FLOAT_LAYER_GROWTH * (len(kept) + 1)) * len(flatbuffer):
            continue  # a large layer: in float it would undo the point of int8
        kept.append(layer)
        agreement = _agreement(candidate, samples, reference_ids)
        if agreement > best[0]:
            best = (agreement, candidate, list(kept))
        if agreement >= INT8_AGREEMENT or len(kept) == MAX_FLOAT_LAYERS:
            break
    return best[1], [_short_name(layer) for layer in best[2]]


def _per_tensor_where_harmless(flatbuffer, samples, reference_ids):
    """`(flatbuffer, count)`: the int8 file with the weights of each
    convolution (not depthwise) and dense layer of at least
    `PER_TENSOR_MIN_CHANNELS` output channels, widest first, stored per
    tensor, one scale, instead of per channel, wherever the file still
    agrees with `reference_ids` (the Keras model's top classes of
    `samples`) on as many samples, and gives them as much probability on
    average, as the per-channel file did. LiteRT stores a float32 scale and
    an int64 zero point for each channel of a per-channel tensor, weights
    and bias alike (24 bytes a channel: 15 % of MobileNetV2's int8 file);
    TensorFlow's converter chooses per channel or per tensor for a whole
    model only."""
    floor = _fidelity(flatbuffer, samples, reference_ids)
    count = 0
    for graph_index, op_index in _per_channel_layers(_compat.read_litert(flatbuffer), PER_TENSOR_MIN_CHANNELS):
        trial = _compat.read_litert(flatbuffer)  # a fresh copy of the file as accepted so far
        graph = trial.subgraphs[graph_index]
        _requantize_per_tensor(trial, graph, graph.operators[op_index])
        candidate = _compat.write_litert(trial)
        agreement, probability = _fidelity(candidate, samples, reference_ids)
        if agreement >= floor[0] and probability >= floor[1]:
            flatbuffer, count = candidate, count + 1
    return flatbuffer, count


def _per_channel_layers(model, min_channels=2):
    """`(subgraph, op)` indices of the convolutions and dense layers whose
    int8 weights have a scale per output channel (at least `min_channels`),
    the most channels first."""
    found = []
    for graph_index, graph in enumerate(model.subgraphs):
        for op_index, operator in enumerate(graph.operators):
            if _compat.litert_op_name(model, operator) not in ("CONV_2D", "FULLY_CONNECTED"):
                continue
            weights = graph.tensors[operator.inputs[1]]
            quantization = weights.quantization
            if weights.type != _compat.litert_tensor_type("INT8") or quantization is None:
                continue
            channels = 0 if quantization.scale is None else len(quantization.scale)
            if channels >= max(min_channels, 2) and quantization.quantizedDimension == 0:
                found.append((-channels, graph_index, op_index))
    return [(graph_index, op_index) for _, graph_index, op_index in sorted(found)]


def _requantize_per_tensor(model, graph, operator):
    """Stores `operator`'s int8 weights with the largest of their channels'
    scales (each channel's values rescaled to it) and its int32 bias with
    the matching scale, as a per-tensor quantizer would have."""
    weights = graph.tensors[operator.inputs[1]]
    scales = np.asarray(weights.quantization.scale, dtype=np.float64)
    ratio = scales / scales.max()
    values = _constant(model, weights, np.int8).reshape(len(scales), -1)
    rescaled = np.clip(np.round(values * ratio[:, None]), -127, 127).astype(np.int8)
    _set_constant(model, weights, rescaled, scales.max())
    if len(operator.inputs) > 2 and operator.inputs[2] >= 0:
        bias = graph.tensors[operator.inputs[2]]
        bias_scale = np.asarray(bias.quantization.scale, dtype=np.float64)[np.argmax(scales)]
        _set_constant(model, bias, np.round(_constant(model, bias, np.int32) * ratio).astype(np.int32), bias_scale)


def _constant(model, tensor, dtype):
    return np.frombuffer(np.asarray(model.buffers[tensor.buffer].data, dtype=np.uint8).tobytes(), dtype=dtype)


def _set_constant(model, tensor, values, scale):
    model.buffers[tensor.buffer].data = np.frombuffer(values.tobytes(), dtype=np.uint8)
    tensor.quantization.scale = np.asarray([scale], dtype=np.float32)
    tensor.quantization.zeroPoint = np.zeros(1, dtype=np.int64)
    tensor.quantization.quantizedDimension = 0


def _int8_converter(serving_folder, samples, integer_only, io_type=tf.uint8):
    converter = tf.lite.TFLiteConverter.from_saved_model(serving_folder, signature_keys=["serve"])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([samples[i : i + 1]] for i in range(len(samples)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not integer_only:
        converter.target_spec.supported_ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
    converter.inference_input_type = io_type
    converter.inference_output_type = io_type
    return converter


def _debugger(serving_folder, samples, converter, denylisted=()):
    step = max(1, len(samples) // DEBUG_EXAMPLES)
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(denylisted))
    return tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=lambda: ([samples[i : i + 1]] for i in range(0, len(samples), step)),
        debug_options=options,
    )


def _worst_layers(serving_folder, samples):
    """The quantized layers' output tensors, largest error (RMSE / scale) first."""
    debugger = _debugger(serving_folder, samples, _int8_converter(serving_folder, samples, False, tf.float32))
    with _debugger_warnings():
        debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = [row for row in csv.DictReader(io.StringIO(dump.getvalue())) if float(row["scale"] or 0) > 0]
    rows.sort(key=lambda row: -(float(row["mean_squared_error"]) ** 0.5) / float(row["scale"]))
    return [row["tensor_name"] for row in rows]


def _with_float_layers(serving_folder, samples, layers):
    converter = _int8_converter(serving_folder, samples, integer_only=False)
    with _debugger_warnings():
        return _debugger(serving_folder, samples, converter, layers).get_nondebug_quantized_model()


@contextlib.contextmanager
def _debugger_warnings():
    """Silences TensorFlow's own debugger's use of its deprecated interpreter (tfxfer's runs use ai-edge-litert)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated", category=UserWarning)
        yield


def _agreement(flatbuffer, samples, reference_ids):
    return _fidelity(flatbuffer, samples, reference_ids)[0]


def _fidelity(flatbuffer, samples, reference_ids):
    """`(top-1 agreement, mean probability)` of `reference_ids` in the file's outputs on `samples`."""
    scores = _scores(flatbuffer, samples)
    probability = scores[np.arange(len(scores)), reference_ids]
    return float(np.mean(scores.argmax(1) == reference_ids)), float(np.mean(probability))


def _scores(flatbuffer, samples):
    from tfxfer.deploy.runtimes import LiteRTRunner

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, FILE)
        with open(path, "wb") as file:
            file.write(flatbuffer)
        runner = LiteRTRunner(path)
        return np.concatenate([runner(samples[i : i + 32])["probabilities"] for i in range(0, len(samples), 32)])


def _short_name(tensor_name):
    """The Keras layer of a converter tensor name ("model/backbone/block_2_depthwise_relu/Relu6;...")."""
    parts = tensor_name.split(";")[0].split("/")
    return parts[-2] if len(parts) > 1 else parts[0]


def _folded_logits(model):
    """`model`'s logits with its feature scaling folded into the linear head,
    or `model` itself where it has no such pair."""
    import keras

    scaling, head = getattr(model, "feature_scaling", None), getattr(model, "head", None)
    if not getattr(model, "feature_scaling_adapted", False) or not isinstance(head, keras.layers.Dense):
        return lambda images: model(images, training=False)
    features = keras.Model(model.inputs, scaling.input)
    mean, variance = (
        keras.ops.convert_to_numpy(v).astype(np.float64).ravel() for v in (scaling.mean, scaling.variance)
    )
    scale = np.maximum(np.sqrt(variance), keras.config.epsilon())
    scale = np.maximum(scale, SCALE_FLOOR * np.median(scale))
    weights, bias = (keras.ops.convert_to_numpy(w).astype(np.float64) for w in head.weights)
    kernel = tf.constant((weights / scale[:, None]).astype(np.float32))
    bias = tf.constant((bias - (mean / scale) @ weights).astype(np.float32))
    return lambda images: tf.matmul(features(images, training=False), kernel) + bias


def _converted(converter):
    """`converter.convert()`, with ops LiteRT lacks named in one line."""
    try:
        return converter.convert()
    except Exception as error:  # the converter's own ConverterError
        ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", str(error))))
        if not ops:
            raise
        raise ValueError(
            f"LiteRT has no kernels for {', '.join(ops)}, which this model computes in its graph "
            "(a text model's vectorizer), and the ai-edge-litert interpreter runs no TensorFlow select ops: "
            "export it with --format saved_model, which serves raw strings."
        ) from None


def with_metadata(flatbuffer, labels, metadata):
    """`flatbuffer` with a zip appended holding `labels.txt` and
    `metadata.json`, as TFLite Support packs associated files: the
    interpreter ignores it, `read_metadata` and any zip reader find it."""
    buffer = io.BytesIO()
    buffer.write(flatbuffer)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("labels.txt", "".join(f"{name}\n" for name in labels))
        archive.writestr("metadata.json", json.dumps(metadata, indent=2))
    return buffer.getvalue()


def read_metadata(path):
    """`(labels, metadata)` packed inside a LiteRT file by `with_metadata`."""
    with zipfile.ZipFile(path) as archive:
        labels = archive.read("labels.txt").decode("utf-8").splitlines()
        return labels, json.loads(archive.read("metadata.json"))
