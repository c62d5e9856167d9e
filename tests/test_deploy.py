"""LiteRT and ONNX exports of tfxfer runs, checked with their own runtimes
(ai-edge-litert, onnxruntime) against the Keras model; the refusals."""

import json
import math
import os
import sys
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from tfxfer import deploy, recipes
from tfxfer.cli import main
from tfxfer.deploy.runtimes import LiteRTRunner, OnnxRunner

pytestmark = pytest.mark.slow


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("deploy") / "digits"
    fitted = _invoke("fit", "image", "--source", "digits04_cnn", "--data", "digits", "--epochs", "1", "--run-dir", run)
    assert fitted.exit_code == 0, fitted.output
    recipe, model, _, _ = recipes.load_run(run)
    data = recipe.load()
    return run, model, recipe.model_inputs(model, data.x_test), data.y_test


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("deploy") / "text"
    fitted = _invoke(
        "fit", "text", "--source", "embedded", "--data", "mini_newsgroup", "--epochs", "0", "--run-dir", run
    )
    assert fitted.exit_code == 0, fitted.output
    return run


def _keras_probabilities(model, x):
    return np.asarray(deploy.serving_outputs(model, x)["probabilities"])


def _nothing_left(folder):
    """Neither the folder nor a staging folder beside it."""
    return not folder.exists() and not [p for p in folder.parent.iterdir() if p.name.startswith(".export-")]


@pytest.mark.parametrize("quantize", ["none", "float16", "dynamic", "int8", "int8-only"])
def test_litert_files_serve_what_keras_predicts_and_carry_their_labels(digits_run, tmp_path, quantize):
    run, model, x, y = digits_run
    result = _invoke("export", run, tmp_path / "out", "--format", "litert", "--quantize", quantize)
    assert result.exit_code == 0, result.output
    path = tmp_path / "out" / "model.tflite"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    labels, metadata = deploy.read_metadata(path)
    assert labels == model.class_names == (tmp_path / "out" / "labels.txt").read_text().split()
    assert metadata["quantize"] == manifest["quantize"] == quantize and metadata["labels"] == labels

    runner = LiteRTRunner(path)
    served = runner(x)
    want = _keras_probabilities(model, x)
    agreement = np.mean(served["probabilities"].argmax(1) == want.argmax(1))
    difference = np.max(np.abs(served["probabilities"] - want))
    check = manifest["verification"]
    assert check["examples"] == len(y) == 360 and check["runtime"].startswith("ai-edge-litert ")
    assert check["top1_agreement"] == pytest.approx(agreement) and check["max_probability_difference"] == pytest.approx(
        difference, rel=1e-4
    )
    assert check["keras_accuracy"] == pytest.approx(np.mean(want.argmax(1) == y))
    # The names served are the classes of the ids served.
    names = [name.decode() for name in served["top_names"][:, 0]]
    assert names == [labels[i] for i in served["top_ids"][:, 0]]
    if quantize == "none":
        assert difference < 1e-4 and agreement == 1.0
    elif quantize == "float16":
        assert difference < 2e-2 and agreement >= 0.99
    else:
        assert agreement >= 0.95 and abs(check["accuracy"] - check["keras_accuracy"]) <= 0.02
    details = runner.input_details
    if quantize in ("int8", "int8-only"):  # raw uint8 pixels in (scale 1, zero point 0), of the training images' size
        assert details["dtype"] is np.uint8 and details["quantization"] == (1.0, 0)
        assert list(details["shape_signature"]) == [-1, 8, 8, 1] and metadata["input"]["shape"] == [None, 8, 8, 1]
        assert runner.output_details["probabilities"]["dtype"] is np.uint8
        record = json.loads((run / "representative.json").read_text())
        assert record["examples"] == 300 and record["seed"] == 0 and len(set(record["indices"])) == 300
        assert metadata["float_layers"] == []  # digits quantizes well: nothing kept in float
        assert isinstance(metadata["per_tensor_layers"], int)
    else:  # uint8 images of any size, resized in the graph as in the SavedModel
        assert details["dtype"] is np.uint8 and list(details["shape_signature"]) == [-1, -1, -1, 1]
    if quantize == "int8-only":  # integer-only: no float layer; one float tensor, the pixels' requantization
        floats = [d for d in runner.interpreter.get_tensor_details() if d["dtype"] == np.float32]
        assert [d["name"] for d in floats] == ["FakeQuantWithMinMaxArgs1"]


def test_int8_can_keep_the_layers_quantization_hurts_most_in_float(digits_run):
    from tfxfer.deploy import litert
    from tfxfer.exporting import write_endpoint

    run, model, x, _ = digits_run
    representative = x[:120].astype(np.float32)
    reference = _keras_probabilities(model, representative).argmax(1)
    serving = str(run.parent / "int8-serving")
    write_endpoint(model, serving, *litert.int8_endpoint(model, representative.shape[1:]))
    worst = litert._worst_layers(serving, representative)
    assert len(worst) >= 5 and len(set(worst)) == len(worst)  # every quantized layer, ranked
    path = run.parent / "mixed.tflite"
    path.write_bytes(litert._with_float_layers(serving, representative, worst[:1]))
    runner = LiteRTRunner(path)
    floats = [d["name"] for d in runner.interpreter.get_tensor_details() if d["dtype"] == np.float32]
    # That layer in float; the debugger's converter takes float32 pixels (0-255) in.
    assert worst[0] in floats and runner.input_details["dtype"] is np.float32
    assert np.mean(runner(representative)["probabilities"].argmax(1) == reference) >= 0.95
    # Where full int8 already agrees, nothing is kept in float.
    assert litert.convert_int8(serving, representative, reference)[1] == []


def test_int8_stores_per_tensor_the_layers_where_that_changes_no_top_class(digits_run, tmp_path, monkeypatch):
    from tfxfer import _compat
    from tfxfer.deploy import litert
    from tfxfer.exporting import write_endpoint

    run, model, x, _ = digits_run
    representative = x[:120].astype(np.float32)
    reference = _keras_probabilities(model, representative).argmax(1)
    serving = str(tmp_path / "serving")
    write_endpoint(model, serving, *litert.int8_endpoint(model, representative.shape[1:]))
    per_channel, _ = litert._int8_file(serving, representative, reference, integer_only=True)

    # One layer by hand: one scale and zero point; each weight within half a step of its per-channel value.
    edited = _compat.read_litert(per_channel)
    layers = litert._per_channel_layers(edited)
    graph = edited.subgraphs[layers[0][0]]
    operator = graph.operators[layers[0][1]]
    weights, bias = graph.tensors[operator.inputs[1]], graph.tensors[operator.inputs[2]]
    scales, bias_scales = np.asarray(weights.quantization.scale), np.asarray(bias.quantization.scale)
    assert len(layers) >= 2 and len(scales) > 1
    before = litert._constant(edited, weights, np.int8).reshape(len(scales), -1) * scales[:, None]
    bias_before = litert._constant(edited, bias, np.int32) * bias_scales
    litert._requantize_per_tensor(edited, graph, operator)
    assert len(weights.quantization.scale) == len(weights.quantization.zeroPoint) == len(bias.quantization.scale) == 1
    after = litert._constant(edited, weights, np.int8).reshape(len(scales), -1) * weights.quantization.scale[0]
    assert 0 < np.max(np.abs(after - before)) <= scales.max() / 2 + 1e-7
    bias_after = litert._constant(edited, bias, np.int32) * bias.quantization.scale[0]
    np.testing.assert_allclose(bias_after, bias_before, atol=bias.quantization.scale[0])
    assert len(_compat.write_litert(edited)) < len(per_channel)

    # Layers this narrow stay per channel (under 6 KB to gain): the file is left as it is.
    assert litert._per_tensor_where_harmless(per_channel, representative, reference) == (per_channel, 0)
    # Otherwise the search keeps only what costs nothing on the calibration images: agreeing with
    # Keras at least as often, giving its classes at least as much probability.
    monkeypatch.setattr(litert, "PER_TENSOR_MIN_CHANNELS", 2)
    flatbuffer, count = litert._per_tensor_where_harmless(per_channel, representative, reference)
    held, before = (litert._fidelity(f, representative, reference) for f in (flatbuffer, per_channel))
    assert held[0] >= before[0] and held[1] >= before[1]
    assert count or flatbuffer == per_channel
    # A layer whose channels already share one scale loses nothing per tensor: stored so, smaller.
    weights.quantization.scale = np.full(len(scales), weights.quantization.scale[0], np.float32)
    weights.quantization.zeroPoint = np.zeros(len(scales), np.int64)
    bias.quantization.scale = np.full(len(scales), bias.quantization.scale[0], np.float32)
    bias.quantization.zeroPoint = np.zeros(len(scales), np.int64)
    uniform = _compat.write_litert(edited)
    flatbuffer, count = litert._per_tensor_where_harmless(uniform, representative, reference)
    assert count >= 1 and len(flatbuffer) < len(uniform)
    held, before = (litert._fidelity(f, representative, reference) for f in (flatbuffer, uniform))
    assert held[0] >= before[0] and held[1] >= before[1]


def _constants(flatbuffer):
    """`(type name, values)` of each constant tensor of a LiteRT file."""
    from tfxfer import _compat

    model = _compat.read_litert(flatbuffer)
    names = {_compat.litert_tensor_type(name): name for name in ("FLOAT16", "FLOAT32", "INT32")}
    return [
        (names.get(tensor.type, "other"), math.prod(tensor.shape))
        for tensor in model.subgraphs[0].tensors
        if model.buffers[tensor.buffer].data is not None and len(model.buffers[tensor.buffer].data)
    ]


def test_float16_keeps_the_small_weights_in_float32(digits_run, tmp_path):
    from tfxfer.deploy import litert
    from tfxfer.exporting import serving_inputs, write_endpoint

    run, model, x, _ = digits_run
    serving = str(tmp_path / "serving")
    write_endpoint(model, serving, lambda inputs: deploy.serving_outputs(model, inputs), serving_inputs(model)[0])
    mixed = litert.convert(serving, "float16")
    rounded = litert._converted(litert._converter(serving, "float16"))  # TensorFlow's converter alone
    small = litert.FLOAT16_MIN_ELEMENTS
    assert any(kind == "FLOAT16" and size < small for kind, size in _constants(rounded))
    assert all(size >= small for kind, size in _constants(mixed) if kind == "FLOAT16")
    assert any(kind == "FLOAT16" for kind, _ in _constants(mixed))  # the large weights are still halved
    assert any(kind == "FLOAT32" and size < small for kind, size in _constants(mixed))
    assert len(rounded) / 2 < len(mixed) < 1.05 * len(rounded)

    want = _keras_probabilities(model, x)
    differences = []
    for name, flatbuffer in (("mixed", mixed), ("rounded", rounded)):
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(flatbuffer)
        served = LiteRTRunner(path)(x)["probabilities"]
        differences.append(np.max(np.abs(served - want)))
    assert differences[0] <= differences[1]


def test_the_default_litert_export_is_int8_calibrated_on_training_images(digits_run, tmp_path):
    run = digits_run[0]
    result = _invoke("export", run, tmp_path / "out", "--format", "litert")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["quantize"] == "int8"
    assert "(int8, " in result.output and "checked with ai-edge-litert" in result.output
    size = os.path.getsize(tmp_path / "out" / "model.tflite")
    assert zipfile.is_zipfile(tmp_path / "out" / "model.tflite") and size < 60_000


@pytest.mark.parametrize("quantize", ["none", "dynamic"])
def test_onnx_files_serve_what_keras_predicts_and_carry_their_labels(digits_run, tmp_path, quantize):
    run, model, x, y = digits_run
    result = _invoke("export", run, tmp_path / "out", "--format", "onnx", "--quantize", quantize)
    assert result.exit_code == 0, result.output
    path = tmp_path / "out" / "model.onnx"
    labels, metadata = deploy.read_metadata(path)
    assert labels == model.class_names and metadata["input"]["dtype"] == "uint8"
    runner = OnnxRunner(path)
    assert runner.input.name == "images" and set(runner.output_names) >= {"probabilities", "top_names"}
    served = runner(x)
    want = _keras_probabilities(model, x)
    assert [str(n) for n in served["top_names"][:, 0]] == [labels[i] for i in want.argmax(1)] or quantize == "dynamic"
    agreement = np.mean(served["probabilities"].argmax(1) == want.argmax(1))
    if quantize == "none":
        np.testing.assert_allclose(served["probabilities"], want, atol=1e-4)
    else:
        assert agreement >= 0.95
    # Any image size: resized inside the graph.
    bigger = np.repeat(np.repeat(x[:4], 2, axis=1), 2, axis=2)
    assert runner(bigger)["probabilities"].shape == (4, 10)


def test_the_python_api_exports_a_model_without_a_run(tmp_path):
    import tfxfer

    model = tfxfer.ImageClassifier.from_preset("digits04_cnn", 3, class_names=["a", "b", "c"])
    path = tfxfer.export(model, tmp_path / "m", format="litert")  # no representative images: float16
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert path == str(tmp_path / "m") and manifest["quantize"] == "float16" and manifest["labels"] == ["a", "b", "c"]
    assert manifest["verification"]["data"] == "unlabelled check inputs"
    with pytest.raises(ValueError, match="representative_data"):
        tfxfer.export(model, tmp_path / "q", format="litert", quantize="int8")
    with pytest.raises(ValueError, match="--format onnx takes --quantize auto or none or dynamic"):
        tfxfer.export(model, tmp_path / "q", format="onnx", quantize="int8")
    assert _nothing_left(tmp_path / "q")


@pytest.mark.parametrize(("format", "op"), [("litert", "StringLower"), ("onnx", "HashTableV2")])
def test_a_text_model_is_refused_naming_the_op_and_the_alternative(text_run, tmp_path, format, op):
    out = tmp_path / "out"
    result = _invoke("export", text_run, out, "--format", format)
    assert result.exit_code == 1
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and op in message and "--format saved_model" in message, message
    assert _nothing_left(out)


def test_refusals_are_one_line_and_leave_nothing(digits_run, tmp_path, monkeypatch):
    run = digits_run[0]
    taken = tmp_path / "taken"
    taken.mkdir()
    result = _invoke("export", run, taken, "--format", "litert")
    assert result.exit_code == 1 and "already exists" in result.output and not list(taken.iterdir())

    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text((run / "config.json").read_text())
    result = _invoke("export", unfinished, tmp_path / "a", "--format", "onnx")
    assert result.exit_code == 1 and "No model.keras" in result.output and _nothing_left(tmp_path / "a")

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    result = _invoke("export", run, tmp_path / "b", "--format", "onnx")
    assert result.exit_code == 1 and "onnxruntime" in result.output and "pip install 'tfxfer[deploy]'" in result.output
    assert len(result.output.strip().splitlines()) == 1 and _nothing_left(tmp_path / "b")

    result = _invoke("export", run, tmp_path / "c", "--format", "onnx", "--quantize", "float16")
    assert result.exit_code == 1 and "takes --quantize auto or none or dynamic" in result.output
