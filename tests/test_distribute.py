"""tf.distribute on CPU: strategy resolution, MirroredStrategy on 2 logical
CPUs (in a fresh process), mixed_bfloat16 training and export."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfxfer import ImageClassifier, distribute, export

CHECKS = pathlib.Path(__file__).with_name("two_cpu_checks.py")


@pytest.fixture(scope="module")
def two_cpu_results():
    done = subprocess.run([sys.executable, str(CHECKS)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_mirrored_on_two_cpus_equals_one_device_on_the_global_batch(two_cpu_results):
    assert two_cpu_results["replicas"] == 2
    assert two_cpu_results["weights_moved"] > 1e-3  # training did something
    assert two_cpu_results["classifier_max_difference"] < 1e-5


@pytest.mark.slow
def test_alignment_methods_train_under_mirrored(two_cpu_results):
    for name in ("coral", "mmd", "dann"):
        assert two_cpu_results[f"{name}_loss_finite"]
        assert two_cpu_results[f"{name}_max_difference"] < 0.5


@pytest.mark.slow
def test_regularizers_and_distillation_train_under_mirrored(two_cpu_results):
    assert two_cpu_results["regularizers_loss_finite"] and two_cpu_results["distillation_loss_finite"]


def test_auto_resolution_and_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.resolve_name("auto") == "default"  # one CPU, no GPU, no cluster
    assert distribute.strategy("auto").num_replicas_in_sync == 1 and distribute.is_chief()
    cluster = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert distribute.resolve_name("auto") == "multi_worker" and not distribute.is_chief()
    assert distribute.scaled_learning_rate(1e-3, tf.distribute.get_strategy()) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="name must be one of"):
        distribute.strategy("horovod")


@pytest.fixture
def bfloat16():
    policy = keras.mixed_precision.dtype_policy()
    yield distribute.set_precision("mixed_bfloat16")
    keras.mixed_precision.set_dtype_policy(policy)


def test_mixed_bfloat16_trains_outputs_float32_and_exports(bfloat16, hub_module, tmp_path):
    from tfxfer import HubFeatures

    rng = np.random.default_rng(0)
    images, labels = rng.uniform(0, 16, size=(16, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 16)
    model = ImageClassifier(HubFeatures(str(hub_module), trainable=True), num_classes=3)  # a float32 module: cast, no error
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [np.array(w) for w in model.head.weights]
    model.fit(images, labels, epochs=2, batch_size=8, verbose=0)
    assert model.head.compute_dtype == "float32" and model.backbone.compute_dtype == "bfloat16"
    assert model.predict(images, verbose=0).dtype == np.float32
    assert not np.allclose(before[0], model.head.kernel)
    export(model, tmp_path / "served", atol=1e-2)
    assert (tmp_path / "served" / "saved_model.pb").exists()
    with pytest.raises(ValueError, match="precision must be one of"):
        distribute.set_precision("float8")
