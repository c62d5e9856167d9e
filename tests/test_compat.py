"""The private names tfxfer relies on still exist, and each does what tfxfer needs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfxfer import _compat


@pytest.mark.parametrize("name", sorted(_compat.PRIVATE_NAMES))
def test_each_private_name_exists(name):
    _compat.check([name])  # raises ImportError naming `name` if it moved


def test_check_names_a_private_name_that_moved(monkeypatch):
    monkeypatch.setitem(_compat.PRIVATE_NAMES, "keras.Model._no_such_hook", "a test")
    with pytest.raises(ImportError, match=r"keras\.Model\._no_such_hook"):
        _compat.check(["keras.Model._no_such_hook"])


def test_bind_variable_reads_and_writes_the_tf_variable():
    variable = tf.Variable([1.0, 2.0])
    view = _compat.bind_variable(keras.Variable(initializer=variable, name="view"), variable)
    view.assign([3.0, 4.0])
    np.testing.assert_array_equal(variable.numpy(), [3.0, 4.0])
    variable.assign([5.0, 6.0])
    np.testing.assert_array_equal(np.asarray(view), [5.0, 6.0])


def test_in_safe_mode_follows_keras_loading(tmp_path):
    seen = []

    @keras.saving.register_keras_serializable(package="tfxfer_test_compat")
    class Probe(keras.layers.Layer):
        def call(self, x):
            return x

        @classmethod
        def from_config(cls, config):
            seen.append(_compat.in_safe_mode())
            return cls(**config)

    model = keras.Sequential([keras.Input((2,)), Probe()])
    model.save(tmp_path / "m.keras")
    keras.saving.load_model(tmp_path / "m.keras")
    keras.saving.load_model(tmp_path / "m.keras", safe_mode=False)
    assert seen == [True, False] and not _compat.in_safe_mode()


def test_optimizer_helpers_find_the_variable_and_the_schedule():
    weights = [keras.Variable(np.ones(2), name="a"), keras.Variable(np.ones(3), name="b")]
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=0.1)
    optimizer.exclude_from_weight_decay(var_names=["b"])
    optimizer.build(weights)
    assert _compat.optimizer_variable_index(optimizer, weights[1]) == 1
    assert _compat.optimizer_decays(optimizer, weights[0]) and not _compat.optimizer_decays(optimizer, weights[1])
    assert _compat.optimizer_schedule(optimizer) is schedule


def test_newsgroup_strippers_strip_in_scikit_learns_order():
    names = [name for name, _ in _compat.newsgroup_strippers()]
    assert names == ["headers", "footers", "quotes"]
    strip_headers = dict(_compat.newsgroup_strippers())["headers"]
    assert strip_headers("From: a@b\nSubject: x\n\nbody").strip() == "body"


def test_saved_model_root_takes_assigned_variables(tmp_path):
    root = _compat.SavedModelRoot()
    root.variables = [tf.Variable(2.0)]
    tf.saved_model.save(root, str(tmp_path / "m"))
    assert float(tf.saved_model.load(str(tmp_path / "m")).variables[0]) == 2.0
