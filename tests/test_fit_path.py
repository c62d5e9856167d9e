"""The typed path from the command line to the artefact: a CLI that starts
without TensorFlow, `FitConfig` as the run's record, one place for settings
from the environment, the strategies' contract, and `fit_stage`."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import tfxfer
from tfxfer import settings
from tfxfer.cli import main
from tfxfer.fit_config import FitConfig
from tfxfer.validation import check_consistent_length, check_number

CLI = [sys.executable, "-m", "tfxfer.cli"]


def _fresh(code):
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)


def test_the_cli_module_and_its_help_load_no_tensorflow():
    loaded = _fresh(
        "import sys, tfxfer.cli\n"
        "from click.testing import CliRunner\n"
        "for args in (['--help'], ['--version'], ['fit', 'image', '--help'], ['fit', 'text', '--seed', '-1']):\n"
        "    CliRunner().invoke(tfxfer.cli.main, args)\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'keras_hub', 'sklearn') if m in sys.modules))"
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


def test_version_and_help_print_no_tensorflow_line():
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    for args in (["--version"], ["--help"]):
        shown = subprocess.run([*CLI, *args], capture_output=True, text=True, env=environment, timeout=120)
        assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    assert "version 0.1.0" in subprocess.run([*CLI, "--version"], capture_output=True, text=True).stdout


def test_a_command_that_loads_tensorflow_hides_its_start_up_lines(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TFXFER_VERBOSE")}
    quiet = subprocess.run([*CLI, "sources"], capture_output=True, text=True, env=environment, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert "cuda" not in quiet.stderr.lower() and "absl" not in quiet.stderr and "oneDNN" not in quiet.stderr
    assert "digits04_cnn" in quiet.stdout


def test_fit_config_is_the_run_record_and_reads_back():
    config = FitConfig(kind="image", source="digits04_cnn", data="digits", epochs=3, strategy="default")
    record = config.record(["0", "1"])
    assert record["command"] == "fit image" and record["epochs"] == 3 and record["class_names"] == ["0", "1"]
    assert "remove" not in record and "text_encoder" not in record  # text settings are not an image run's
    assert FitConfig.from_record(json.loads(json.dumps(record))) == config
    assert {"strategy", "precision", "export", "quiet"} <= set(FitConfig.not_identity())
    assert "seed" in config.fields(identity=True) and "strategy" in config.fields(identity=False)


@pytest.mark.parametrize(
    "settings_, message",
    [
        ({"seed": -1}, r"seed must be in \[0, 4294967296\)"),
        ({"strategy": "tpux"}, "strategy must be one of"),
        ({"input_size": 100000}, r"input_size must be in \[32, 4096\]"),
        ({"epochs": -2}, "epochs must be in"),
        ({"learning_rate": 0}, r"learning_rate must be in \(0"),
        ({"text_encoder": "bag"}, "text_encoder must be one of"),
    ],
)
def test_fit_config_refuses_values_before_any_work(settings_, message):
    with pytest.raises(ValueError, match=message):
        FitConfig(kind="text", source="embedded", data="mini_newsgroup", **settings_)


def test_a_config_from_another_version_is_refused_naming_what_is_wrong():
    with pytest.raises(ValueError, match="names the command 'predict'"):
        FitConfig.from_record({"command": "predict", "source": "x", "data": "y"})
    with pytest.raises(ValueError, match=r"lacks \['data'\]"):
        FitConfig.from_record({"command": "fit text", "source": "embedded"})
    with pytest.raises(ValueError, match="newer than this tfxfer's"):
        FitConfig.from_record({"schema": 99, "command": "fit text", "source": "a", "data": "b"})
    old = FitConfig.from_record({"command": "fit text", "source": "embedded", "data": "mini_newsgroup", "extra": 1})
    assert old.batch_size == 64  # a record without the newer keys reads with their defaults


def test_text_encoder_is_refused_for_a_source_with_its_own_encoder(tmp_path):
    module = tmp_path / "module"
    module.mkdir()  # a folder: a SavedModel text module, used as it is
    result = CliRunner().invoke(
        main, ["fit", "text", "--source", str(module), "--text-encoder", "vectors", "--run-dir", str(tmp_path / "r")]
    )
    assert result.exit_code == 1 and "--text-encoder applies to word-vector sources" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_a_trained_model_file_as_source_says_what_to_do(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"")
    result = CliRunner().invoke(main, ["fit", "image", "--source", str(model), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 1 and "is a trained Keras model, not a pretrained source" in result.output


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("TFXFER_MAX_ENTRY_BYTES", "4GiB", 4 << 30),
        ("TFXFER_MAX_ENTRY_BYTES", "4 GiB", 4 << 30),
        ("TFXFER_MAX_ENTRIES", "200,000", 200_000),
        ("TFXFER_MAX_ENTRIES", "", 7),  # empty: unset
    ],
)
def test_sizes_from_the_environment_read_as_the_docs_write_them(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    assert settings.size(name, 7) == expected


@pytest.mark.parametrize("value", ["inf", "-1", "0", "lots", "1e400x"])
def test_a_size_that_does_not_parse_names_the_variable_and_the_form(monkeypatch, value):
    monkeypatch.setenv("TFXFER_MAX_IMAGE_PIXELS", value)
    with pytest.raises(settings.SettingError, match=rf"TFXFER_MAX_IMAGE_PIXELS={value!r} is not a positive whole"):
        settings.size("TFXFER_MAX_IMAGE_PIXELS", 1)


def test_environment_paths_and_tf_config(monkeypatch, tmp_path):
    monkeypatch.setenv("TFXFER_CACHE", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert settings.cache_folder("features") == os.path.join(str(tmp_path), "tfxfer", "features")  # empty: unset
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(settings.SettingError, match="TF_CONFIG='{not json' is not JSON"):
        settings.tf_config()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}, "task": {}}')
    assert settings.tf_config() == {"cluster": {}, "task": {}}


def test_validation_names_the_argument_and_the_range():
    with pytest.raises(ValueError, match=r"rate must be in \(0, 1\]. Received: rate=0"):
        check_number("rate", 0, 0, 1, low_open=True)
    with pytest.raises(ValueError, match="count must be an integer. Received: count=2.5"):
        check_number("count", 2.5, integer=True)
    with pytest.raises(ValueError, match="x: 3, y: 2"):
        check_consistent_length(x=np.zeros(3), y=[1, 2])


def _plain_task():
    """A user's own model with `.backbone`: no tfxfer Task."""
    keras.utils.set_random_seed(0)
    source = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="relu")], name="source")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(source(inputs)))
    model.backbone = source
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_a_plain_keras_model_with_a_backbone_gets_the_contracts_defaults(tmp_path):
    from tfxfer import fit_head
    from tfxfer.transfer.contract import contract

    model = _plain_task()
    x, y = np.random.default_rng(0).normal(size=(40, 4)).astype("float32"), np.arange(40) % 2
    source_before = [w.copy() for w in model.backbone.get_weights()]
    head_before = model.get_layer("head").get_weights()[0].copy()
    fit_head(model, x, y, epochs=2, cache_dir=tmp_path, progress=False, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(source_before, model.backbone.get_weights()))
    assert not np.array_equal(head_before, model.get_layer("head").get_weights()[0])
    with pytest.raises(TypeError, match=r"whose \.backbone is the pretrained source"):
        contract(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))


def test_fit_stage_is_one_resumable_stage(tmp_path):
    from tfxfer import fit_stage

    model = _plain_task()
    x, y = np.random.default_rng(1).normal(size=(40, 4)).astype("float32"), np.arange(40) % 2
    history = fit_stage(model, x, y, name="mine", epochs=3, learning_rate=1e-2, checkpoint_dir=tmp_path, verbose=0)
    assert len(history.history["loss"]) == 3 and (tmp_path / "mine" / "done.weights.h5").is_file()
    trained = model.get_weights()
    again = _plain_task()  # a rerun: the stage is found finished and its weights restored
    assert fit_stage(again, x, y, name="mine", epochs=3, checkpoint_dir=tmp_path, verbose=0) is None
    assert all(np.array_equal(a, b) for a, b in zip(trained, again.get_weights()))


def test_the_tfxfer_logger_is_the_one_output_channel(capsys):
    from tfxfer.log import logger, say, set_verbosity

    say("auto", "a stage's plan")
    say(0, "not said: the call's verbose is off")
    logger.warning("a notice")
    captured = capsys.readouterr()
    assert captured.out == "a stage's plan\n" and captured.err == "a notice\n"
    try:
        set_verbosity("warning")
        say("auto", "quieted")
        assert capsys.readouterr().out == ""
    finally:
        set_verbosity("info")


def test_load_model_registers_tfxfers_classes_in_a_fresh_process(tmp_path):
    import tfxfer

    model = tfxfer.TextClassifier.from_word_vectors(None, ["rocket orbit", "god faith"], 2, dim=4)
    model.save(tmp_path / "m.keras")
    loaded = _fresh(
        "import numpy as np, tfxfer\n"
        f"model = tfxfer.load_model({str(tmp_path / 'm.keras')!r})\n"
        "print(type(model).__name__, model.predict(np.array(['rocket'], dtype=object), verbose=0).shape)"
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip().splitlines()[-1] == "TextClassifier (1, 2)"


def test_a_damaged_model_file_is_named_as_damaged(tmp_path):
    from tfxfer import load_model

    for content in (b"", b"PK\x03\x04 cut short"):
        (tmp_path / "model.keras").write_bytes(content)
        with pytest.raises(ValueError, match=r"model.keras' is damaged: not a whole .keras file"):
            load_model(tmp_path / "model.keras")


def test_unlabelled_data_of_another_kind_is_blamed_on_the_option(tmp_path):
    import numpy as np

    np.savez(tmp_path / "features.npz", x_train=np.zeros((6, 10), "uint8"), y_train=np.arange(6) % 2)
    result = CliRunner().invoke(
        main,
        ["fit", "image", "--source", "digits04_cnn", "--data", "digits", "--unlabelled", str(tmp_path / "features.npz"),
         "--run-dir", str(tmp_path / "run")],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()[-1:]
    assert line.startswith(f"Error: --unlabelled {tmp_path / 'features.npz'}"), result.output
    assert not (tmp_path / "run").exists()


def test_inputs_and_labels_of_different_lengths_are_refused_at_each_entry(tmp_path):
    from tfxfer import fit_head, fit_stage

    model = _plain_task()
    x, y = np.zeros((10, 4), "float32"), np.arange(9) % 2
    for train in (
        lambda: fit_stage(model, x, y, epochs=1, verbose=0),
        lambda: fit_head(model, x, y, epochs=1, cache_dir=tmp_path, progress=False, verbose=0),
    ):
        with pytest.raises(ValueError, match=r"different numbers of examples \(x: 10, y: 9\)"):
            train()
    assert list(tmp_path.iterdir()) == []  # refused before any feature was extracted


def test_seeds_reach_the_weights_through_initializers_not_the_global_state():
    from tfxfer.sources import feature_extractor, text_encoder

    keras.utils.set_random_seed(1)
    first = keras.random.uniform((3,)).numpy()
    keras.utils.set_random_seed(1)
    same, again = feature_extractor(seed=3), feature_extractor(seed=3)
    encoders = [text_encoder(["rocket orbit", "god faith"], dim=4, seed=5) for _ in range(2)]
    assert np.allclose(keras.random.uniform((3,)).numpy(), first)  # the global generator was not reset or drawn
    assert all(np.array_equal(a, b) for a, b in zip(same.get_weights(), again.get_weights()))
    assert not np.array_equal(same.get_weights()[0], feature_extractor(seed=4).get_weights()[0])
    assert np.array_equal(*(e.get_layer("word_embedding").get_weights()[0] for e in encoders))


def test_an_input_size_whose_activations_exceed_memory_is_refused_before_the_run_folder(tmp_path):
    from tfxfer.memory import activation_elements, check_activations

    run = tmp_path / "r"
    fit = ["fit", "image", "--source", "mobilenet_v2/random", "--data", "digits", "--run-dir", str(run)]
    result = CliRunner().invoke(main, [*fit, "--input-size", "4096"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert "--input-size 4096 with --batch-size 64 needs about" in result.output and "GiB free: lower --input-size" in (
        result.output
    )
    assert not run.exists()
    # The estimate grows with the pixels, and a smaller batch that fits is offered.
    model = tfxfer.ImageClassifier.from_preset("mobilenet_v2/random", 10, input_size=96)
    total, largest = activation_elements(model)
    assert 3e6 < total < 6e6 and largest == 49 * 49 * 96  # the first expanded block, padded, at 96 px
    with pytest.raises(ValueError, match="pass --batch-size 3 or less"):
        check_activations(model, 64, True, "--input-size 96", available=int(3.5 * 2 * 4 * total / 0.8))
    assert check_activations(model, 3, True, "--input-size 96", available=int(3.5 * 2 * 4 * total / 0.8)) > 0


def test_a_tpu_strategy_without_a_tpu_and_zero_demo_seeds_are_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    monkeypatch.delenv("COLAB_TPU_ADDR", raising=False)
    fit = ["fit", "image", "--source", "embedded", "--data", "digits", "--run-dir", str(tmp_path / "r")]
    tpu = CliRunner().invoke(main, [*fit, "--strategy", "tpu"])
    assert tpu.exit_code == 1 and tpu.output.strip() == (
        "Error: No TPU could be reached: set TPU_NAME, or use strategy('auto') on this machine."
    )
    assert not (tmp_path / "r").exists()
    seeds = CliRunner().invoke(main, ["demo", "--seeds", "0"])
    assert seeds.exit_code == 2 and "0 is not in the range x>=1" in seeds.output


def test_loading_a_model_with_an_unbuilt_optimizer_warns_nothing(tmp_path):
    import warnings

    import tfxfer

    model = tfxfer.TextClassifier.from_word_vectors(None, ["rocket orbit", "god faith"], 2, dim=4)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")  # compiled, never trained: a solved head
    model.save(tmp_path / "m.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = tfxfer.load_model(tmp_path / "m.keras")
    assert [str(warning.message) for warning in caught if "optimizer" in str(warning.message)] == []
    assert loaded.predict(["rocket"], verbose=0).shape == (1, 2)
