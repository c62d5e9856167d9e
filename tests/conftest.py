"""Test setup: private Keras and TF-Hub caches, small real models."""

import os
import tempfile

# Before Keras is imported: it reads KERAS_HOME once. Tests never see (or
# fill) the user's caches, and nothing is downloaded.
# Once per process: importing this file a second time (as `tests.conftest`)
# must not point the environment at new folders after Keras has read it.
_CACHES = os.environ.get("TFXFER_TEST_CACHES") or tempfile.mkdtemp(prefix="tfxfer-test-caches-")
os.environ["TFXFER_TEST_CACHES"] = _CACHES
os.environ["KERAS_HOME"] = os.path.join(_CACHES, "keras")
os.environ["TFHUB_CACHE_DIR"] = os.path.join(_CACHES, "tfhub")
os.environ["KAGGLEHUB_CACHE"] = os.path.join(_CACHES, "kagglehub")  # KerasHub presets
os.environ["TFXFER_CACHE"] = os.path.join(_CACHES, "tfxfer")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tfxfer import export_hub_module  # noqa: E402

from helpers import IMAGE_SHAPE, small_bn_model  # noqa: E402

# Scripts the tests run in fresh processes (they configure TensorFlow's
# devices, which only a process that has not started TensorFlow can do).
collect_ignore = ["two_cpu_checks.py", "multi_worker_checks.py", "helpers.py"]


@pytest.fixture
def source_model():
    """A fresh copy (same seed) of the model behind `hub_module`."""
    return small_bn_model(named=True)


@pytest.fixture(scope="session")
def hub_module(tmp_path_factory):
    """A TF-Hub-format SavedModel of `small_bn_model()`, in a temporary folder."""
    return export_hub_module(small_bn_model(named=True), tmp_path_factory.mktemp("hub") / "module", IMAGE_SHAPE)


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 17, size=(16, *IMAGE_SHAPE)).astype("uint8")


@pytest.fixture
def labels():
    return np.random.default_rng(1).integers(0, 3, size=16)
