"""tf.distribute on CPU: strategy resolution, MirroredStrategy on 2 logical
CPUs (in a fresh process), two worker processes on 127.0.0.1 under
MultiWorkerMirroredStrategy (one killed mid-epoch and restarted),
mixed_bfloat16 training and export."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfxfer import ImageClassifier, distribute, export

CHECKS = pathlib.Path(__file__).with_name("two_cpu_checks.py")
WORKER = pathlib.Path(__file__).with_name("multi_worker_checks.py")
CPU_ONLY = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="module")
def two_cpu_results():
    done = subprocess.run([sys.executable, str(CHECKS)], capture_output=True, text=True, timeout=600, env=CPU_ONLY)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_mirrored_on_two_cpus_equals_one_device_on_the_global_batch(two_cpu_results):
    assert two_cpu_results["replicas"] == 2
    assert two_cpu_results["weights_moved"] > 1e-3  # training did something
    assert two_cpu_results["classifier_max_difference"] < 1e-5


@pytest.mark.slow
def test_alignment_terms_act_under_mirrored_as_on_one_device(two_cpu_results):
    """Each alignment term changes the training under MirroredStrategy as on
    one device: the replicated run ends much closer to one device with the
    term than to one device without it (a dropped term would flip this)."""
    for name in ("coral", "mmd", "dann"):
        assert two_cpu_results[f"{name}_loss_finite"]
        with_term = two_cpu_results[f"{name}_max_difference"]
        without = two_cpu_results[f"{name}_without_term_difference"]
        assert without > 1e-3 and with_term < 0.5 * without, (name, with_term, without)


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
    model = ImageClassifier(
        HubFeatures(str(hub_module), trainable=True), num_classes=3
    )  # a float32 module: cast, no error
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


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _cluster(out, die_at=None):
    """Starts both workers of a fresh cluster; worker 1 dies mid-epoch `die_at`."""
    ports = [str(port) for port in _free_ports(2)]
    return [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                str(out),
                "--index",
                str(index),
                "--ports",
                *ports,
                *(["--die-at", str(die_at)] if die_at and index == 1 else []),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=CPU_ONLY,
        )
        for index in range(2)
    ]


def _finish(workers, timeout=300):
    logs = [worker.communicate(timeout=timeout)[0] for worker in workers]
    return [worker.returncode for worker in workers], logs


def _result(out, index):
    weights = np.load(out / f"worker-{index}.npz")
    report = json.loads((out / f"worker-{index}.json").read_text())
    return [weights[name] for name in weights.files], report


def _max_difference(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def multi_worker_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi_worker")
    clean, killed, single = root / "clean", root / "killed", root / "single"
    codes, logs = _finish(_cluster(clean))
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    done = subprocess.run(
        [sys.executable, str(WORKER), str(single), "--single"],
        capture_output=True,
        text=True,
        timeout=300,
        env=CPU_ONLY,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    workers = _cluster(killed, die_at=2)
    assert workers[1].wait(timeout=300) == 17  # worker 1 lost mid-epoch 2 of fine-tuning
    try:  # worker 0 notices the lost peer (heartbeats) and fails; a cluster manager would restart both
        workers[0].wait(timeout=120)
    except subprocess.TimeoutExpired:
        workers[0].kill()
    _finish(workers)
    backup = killed / "shared" / "checkpoints" / "fine_tune" / "backup"
    backed_up = json.loads((backup / "training_metadata.json").read_text())
    codes, logs = _finish(_cluster(killed))  # restarted, same command
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    return {"clean": clean, "killed": killed, "single": single, "backed_up": backed_up}


@pytest.mark.slow
def test_two_workers_train_identically_and_equal_one_device(multi_worker_runs):
    clean = multi_worker_runs["clean"]
    (chief_weights, chief), (other_weights, other) = _result(clean, 0), _result(clean, 1)
    single_weights, _ = _result(multi_worker_runs["single"], 0)
    assert chief["strategy"] == other["strategy"] == "CollectiveAllReduceStrategy"  # MultiWorkerMirroredStrategy
    assert chief["replicas"] == other["replicas"] == 2
    assert _max_difference(chief_weights, other_weights) == 0.0
    assert _max_difference(chief_weights, single_weights) < 1e-5  # same global batch on one device
    assert chief["final_loss"] == other["final_loss"]


@pytest.mark.slow
def test_only_the_chief_writes_checkpoints_and_exports(multi_worker_runs):
    clean = multi_worker_runs["clean"]
    _, chief = _result(clean, 0)
    _, other = _result(clean, 1)
    assert chief["chief"] and not other["chief"]
    assert other["writes"] == [] and other["export_returned"] is None
    assert any("checkpoints/fine_tune/backup/latest.weights.h5" in write for write in chief["writes"])
    assert chief["export_returned"] == str(clean / "shared" / "export")
    reloaded = tf.saved_model.load(chief["export_returned"])
    probabilities = reloaded.serve(tf.zeros((2, 8, 8, 1), tf.uint8))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_a_killed_worker_restarted_resumes_from_the_last_checkpoint(multi_worker_runs):
    assert multi_worker_runs["backed_up"]["epoch"] == 1  # killed in epoch 2: epoch 1 was kept
    (weights, chief), (other_weights, other) = (
        _result(multi_worker_runs["killed"], 0),
        _result(multi_worker_runs["killed"], 1),
    )
    clean_weights, _ = _result(multi_worker_runs["clean"], 0)
    assert chief["epochs_run"] == other["epochs_run"] == {"warmup": None, "fine_tune": 2}  # resumed, not redone
    assert _max_difference(weights, other_weights) == 0.0
    assert _max_difference(weights, clean_weights) < 1e-6  # nothing lost
