"""The `tfxfer` command, run in-process with click's runner on offline data:
the run folder it writes, evaluate/export round trips, bad input."""

import csv
import json
import shutil
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tfxfer.cli import main

from helpers import FIT_TEXT_DEFAULTS

PNG = b"\x89PNG"


def _invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "digits"
    # The defaults, as a user runs them: no tuning option.
    result = _invoke("fit", "image", "--source", "digits04_cnn", "--data", "digits", "--run-dir", run, "--quiet")
    assert result.exit_code == 0, result.output
    return run, result.output


@pytest.mark.slow
def test_fit_image_writes_a_complete_run_folder(image_run):
    run, output = image_run
    config = json.loads((run / "config.json").read_text())
    assert config["source"] == "digits04_cnn" and config["labels_per_class"] is None and config["augment"] is False
    assert config["epochs"] == config["head_epochs"] == "auto" and config["unfreeze"] == "all"
    assert "tensorflow" in config["versions"]
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    stages = [r["stage"] for r in rows]
    head, tuned = stages.count("head"), stages.count("fine_tune")
    assert stages == ["head"] * head + ["fine_tune"] * tuned and head >= 1 and tuned >= 1
    # 1,293 training images (10% of the 1,437 held out for validation) in
    # 21 batches of 64: each stage gets 15 epochs for its 300 steps, unless
    # validation stalls first.
    assert config["batch_size"] == 64 and "1437 training" in output
    assert head <= 15 and tuned <= 15
    assert all(float(r["loss"]) > 0 and "val_accuracy" in r for r in rows)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["results"]["test_accuracy"] > 0.85  # all 10 digit classes, from a source that saw 0-4
    assert metrics["results"]["test_examples"] == 360
    assert f"{100 * metrics['results']['test_accuracy']:.2f}%" in output
    for plot in ("curves.png", "confusion.png"):
        assert (run / "plots" / plot).read_bytes()[:4] == PNG
    assert list((run / "logs" / "head").rglob("events.out.tfevents.*"))
    assert list((run / "logs" / "fine_tune").rglob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "fine_tune" / "done.weights.h5").is_file()


@pytest.mark.slow
def test_evaluate_and_export_round_trip(image_run, tmp_path):
    run, _ = image_run
    # The source is the shipped SavedModel module: safe mode (the default) loads it.
    evaluated = _invoke("evaluate", run)
    assert evaluated.exit_code == 0, evaluated.output
    fitted = json.loads((run / "metrics.json").read_text())["results"]
    again = json.loads((run / "evaluation.json").read_text())
    assert again["test_accuracy"] == pytest.approx(fitted["test_accuracy"], abs=1e-6)
    assert (run / "plots" / "evaluation_confusion.png").read_bytes()[:4] == PNG

    out = tmp_path / "served"
    exported = _invoke("export", run, out)
    assert exported.exit_code == 0, exported.output
    model = keras.saving.load_model(run / "model.keras", safe_mode=False)
    images = np.random.default_rng(0).integers(0, 17, (5, 8, 8, 1)).astype("uint8")
    reloaded = tf.saved_model.load(str(out))  # held: the endpoint needs its variables alive
    served = reloaded.serve(tf.constant(images))["probabilities"].numpy()
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model(images.astype("float32"))))
    np.testing.assert_allclose(served, expected, atol=1e-5)
    twice = _invoke("export", run, out)
    assert twice.exit_code != 0 and "already exists" in twice.output

    # A copy of the module anywhere else is any SavedModel: safe mode refuses it.
    from tfxfer.sources.embedded import embedded_source_path

    copy = shutil.copytree(embedded_source_path(), tmp_path / "module")
    moved = tmp_path / "moved"
    moved.mkdir()
    _with_module(run / "model.keras", moved / "model.keras", embedded_source_path(), str(copy))
    shutil.copy(run / "config.json", moved / "config.json")
    refused = _invoke("evaluate", moved)
    assert refused.exit_code != 0 and "--no-safe-mode" in refused.output and str(copy) in refused.output


def _with_module(keras_file, out, module, other):
    """A copy of a `.keras` file whose HubFeatures layer loads `other` instead of `module`."""
    with zipfile.ZipFile(keras_file) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                assert json.dumps(module).encode() in data
                data = data.replace(json.dumps(module).encode(), json.dumps(other).encode())
            target.writestr(item, data)


@pytest.mark.slow
def test_fit_text_with_the_defaults_on_the_offline_sample(tmp_path):
    run = tmp_path / "text"
    result = _invoke(*FIT_TEXT_DEFAULTS, "--run-dir", run, "--no-export", "--quiet")
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())["results"]
    assert metrics["test_examples"] == 40 and metrics["test_accuracy"] > 0.6  # two groups
    assert set(metrics["per_class_accuracy"]) == {"alt.atheism", "sci.space"}
    assert not (run / "export").exists()
    assert (run / "plots" / "confusion.png").read_bytes()[:4] == PNG


def test_fit_text_self_trains_on_the_posts_without_labels(tmp_path):
    run = tmp_path / "few"
    result = _invoke(*FIT_TEXT_DEFAULTS, "--labels-per-class", "10", "--run-dir", run, "--no-export", "--quiet")
    assert result.exit_code == 0, result.output
    assert "20 training" in result.output and " unlabelled" in result.output
    config = json.loads((run / "config.json").read_text())
    assert config["unlabelled"] == "auto" and config["text_encoder"] == "hybrid"
    results = json.loads((run / "metrics.json").read_text())["results"]
    rounds = results["self_training"]["rounds"]
    assert rounds[0]["pseudo_labels"] == 0 and len(rounds) >= 2 and rounds[1]["pseudo_labels"] > 0
    assert results["test_accuracy"] > 0.6
    rest = _invoke(*FIT_TEXT_DEFAULTS, "--unlabelled", "rest", "--run-dir", tmp_path / "all")
    assert rest.exit_code != 0 and "it dropped none" in rest.output


@pytest.mark.slow
def test_fit_image_fine_tunes_on_the_labels_then_self_trains_on_the_rest(tmp_path):
    run = tmp_path / "few"
    result = _invoke(
        "fit", "image", "--source", "digits04_cnn", "--data", "digits", "--labels-per-class", "10",
        "--run-dir", run, "--no-export", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "90 training" not in result.output and "100 training" in result.output and "1337 unlabelled" in result.output
    stages = [r["stage"] for r in csv.DictReader((run / "metrics.csv").open())]
    # The supervised head, then fine-tuning on the 90 labelled training
    # images alone: 2 batches an epoch, so its 300 steps take 150 epochs
    # (with the 1,337 pseudo-labelled images too, 22 batches: 14 epochs).
    assert stages == ["head"] * stages.count("head") + ["fine_tune"] * 150
    results = json.loads((run / "metrics.json").read_text())["results"]
    rounds = results["self_training"]["rounds"]
    assert rounds[0]["pseudo_labels"] == 0 and rounds[1]["pseudo_labels"] > 0
    assert results["test_accuracy"] > 0.85


def test_bad_paths_and_choices_get_one_line_errors(tmp_path):
    missing = _invoke("fit", "image", "--data", tmp_path / "nothing", "--run-dir", tmp_path / "run")
    assert missing.exit_code != 0 and "No image data at" in missing.output and "Traceback" not in missing.output
    vectors = _invoke(
        "fit", "text", "--source", tmp_path / "vectors.txt", "--data", "mini_newsgroup", "--run-dir", tmp_path / "run"
    )
    assert vectors.exit_code != 0 and "No word vectors at" in vectors.output
    precision = _invoke("fit", "image", "--precision", "float64", "--run-dir", tmp_path / "run")
    assert precision.exit_code == 2 and "float64" in precision.output
    not_a_run = _invoke("evaluate", tmp_path)
    assert not_a_run.exit_code != 0 and "not a run folder" in not_a_run.output


def test_sources_lists_presets_and_embedded_sources():
    result = _invoke("sources")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert any(line.startswith("mobilenet_v2/imagenet") for line in lines)
    assert any(line.startswith("digits04_cnn") and "embedded" in line for line in lines)


def test_expected_failures_end_in_one_line_and_bugs_keep_their_traceback(tmp_path):
    from tfxfer.cli import one_line_error

    assert one_line_error(PermissionError(13, "Permission denied", "/data/x.npz")) == (
        "Permission denied: '/data/x.npz' (PermissionError); check the path and its permissions."
    )
    assert "lower --batch-size" in one_line_error(MemoryError())
    assert "Fetch it again" in one_line_error(EOFError("Compressed file ended"))
    exhausted = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor\nmore detail")
    assert one_line_error(exhausted) == "TensorFlow could not run the model: OOM when allocating tensor"
    assert one_line_error(ValueError("two\n  lines")) == "two lines"
    assert one_line_error(KeyError("bug")) is None and one_line_error(TypeError("bug")) is None
    (tmp_path / "config.json").mkdir()  # a run folder whose config is not a file: an OSError deep in open()
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "config.json" in result.output


def test_safe_mode_names_what_it_refused_and_evaluate_names_an_unknown_label(tmp_path):
    from tfxfer import load_model

    inputs = keras.Input((3,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(tmp_path / "model.keras")
    with pytest.raises(ValueError, match=r"refuses part of .*a `Lambda` layer whose `function` is a Python lambda\."):
        load_model(tmp_path / "model.keras")

    run = tmp_path / "text"
    fitted = _invoke(*FIT_TEXT_DEFAULTS, "--run-dir", run, "--no-export", "--quiet", "--head-epochs", "1")
    assert fitted.exit_code == 0, fitted.output
    other = tmp_path / "other.csv"
    other.write_text("text,label\nthe orbit of the moon,sci.space\nthe big bang,astro.ph\n")
    refused = CliRunner().invoke(main, ["evaluate", str(run), "--data", str(other)])
    assert refused.exit_code == 1, refused.output
    assert f"'{other}', line 3: the label 'astro.ph' is not one of the training data's classes" in refused.output
    assert not (run / "evaluation.json").exists()

    # A model file naming code from elsewhere (os.system): one line, the code never imported or run.
    with zipfile.ZipFile(run / "model.keras") as saved:
        members = {name: saved.read(name) for name in saved.namelist()}
    members["config.json"] = json.dumps(
        {"module": "os", "class_name": "system", "config": {"command": f"touch {tmp_path / 'ran'}"}}
    ).encode()
    foreign = tmp_path / "foreign"
    shutil.copytree(run, foreign)
    with zipfile.ZipFile(foreign / "model.keras", "w") as replaced:
        for name, data in members.items():
            replaced.writestr(name, data)
    refused = CliRunner().invoke(main, ["evaluate", str(foreign)])
    assert refused.exit_code == 1 and len(refused.output.strip().splitlines()) == 1, refused.output
    assert "asks for os.system, which is no Keras or tfxfer class" in refused.output
    assert not (tmp_path / "ran").exists()

    # A text model copied over an image run's model.keras: named as such, not blamed on the labels.
    image_run = tmp_path / "image"
    fitted = _invoke("fit", "image", "--source", "embedded", "--data", "digits", "--run-dir", image_run,
                     "--epochs", "0", "--no-export", "--quiet")  # fmt: skip
    assert fitted.exit_code == 0, fitted.output
    shutil.copy(run / "model.keras", image_run / "model.keras")
    for command in (["evaluate", str(image_run)], ["predict", str(image_run), str(other)]):
        refused = CliRunner().invoke(main, command)
        assert refused.exit_code == 1 and len(refused.output.strip().splitlines()) == 1, refused.output
        assert "holds a TextClassifier, but" in refused.output and "is a `fit image` run" in refused.output


def test_option_ranges_are_refused_before_any_work(tmp_path):
    run = tmp_path / "run"
    for option, value, message in (
        ("--labels-per-class", 0, "0 is not in the range x>=2"),
        ("--labels-per-class", 1, "1 is not in the range x>=2"),
        ("--learning-rate", -0.05, "-0.05 is too small; pass a rate above 0"),
        ("--batch-size", 0, "0 is not in the range x>=1"),
        ("--head-epochs", -1, "-1 is too small; pass 0 or more"),
    ):
        result = _invoke(*FIT_TEXT_DEFAULTS, "--run-dir", run, option, value)
        assert result.exit_code == 2 and message in result.output, result.output
        assert not run.exists()  # refused by click before the data was read or the folder made


def test_sources_rank_scores_the_offline_sources_on_the_data(hub_module):
    defaults = _invoke("sources", "--rank", "digits")  # the image presets with weights here: the shipped one
    assert defaults.exit_code == 0, defaults.output
    header, *rows = defaults.output.strip().splitlines()
    assert header.split()[:5] == ["source", "LogME", "H-score", "LEEP", "NCE"]
    assert [row.split()[0] for row in rows] == ["digits04_cnn"]
    both = _invoke("sources", "--rank", "digits", "--candidates", f"{hub_module},digits04_cnn", "--examples", 300)
    assert both.exit_code == 0, both.output
    ranked = [row.split() for row in both.output.strip().splitlines()[1:]]
    assert [row[0] for row in ranked] == ["digits04_cnn", str(hub_module)]  # trained on digits 0-4 vs random conv
    assert float(ranked[0][1]) > float(ranked[1][1]) and all(float(row[3]) <= 0 for row in ranked)
