"""`MultiTaskClassifier`: masked losses for missing labels, training through
`fit_head` and `fine_tune` on the shipped digits source, `.keras` and
SavedModel round trips with one output per task."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfxfer
from tfxfer.data import digit_images
from tfxfer.tasks.multi_task import LabelledAccuracy

RNG = np.random.default_rng(0)


def _dense_source():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu", name="shared")])


def _two_tasks():
    model = tfxfer.MultiTaskClassifier(_dense_source(), heads={"kind": 3, "odd": 2})
    model.compile()
    return model


def test_a_task_without_labels_in_the_data_leaves_its_head_untouched():
    model = _two_tasks()
    x = RNG.normal(size=(32, 6)).astype("float32")
    before = {name: layer.get_weights() for name, layer in model.task_heads.items()}
    shared = model.backbone.get_weights()
    model.fit(x, {"kind": RNG.integers(0, 3, 32), "odd": np.full(32, -1)}, epochs=3, batch_size=8, verbose=0)
    for old, new in zip(before["odd"], model.task_heads["odd"].get_weights()):
        np.testing.assert_array_equal(old, new)
    assert not np.allclose(before["kind"][0], model.task_heads["kind"].get_weights()[0])
    assert not np.allclose(shared[0], model.backbone.get_weights()[0])


def test_each_loss_and_accuracy_are_over_the_labelled_examples_only():
    model = _two_tasks()
    x = RNG.normal(size=(10, 6)).astype("float32")
    kind = np.array([0, 1, 2, 1, 0, -1, -1, -1, -1, -1])
    odd = np.array([-1, -1, -1, -1, -1, -1, 1, 0, 1, 1])
    logits = model.predict(x, verbose=0)
    results = model.evaluate(x, {"kind": kind, "odd": odd}, batch_size=10, verbose=0, return_dict=True)

    def expected(task, labels):
        keep = labels >= 0
        log_p = tf.nn.log_softmax(logits[task][keep]).numpy()
        loss = -log_p[np.arange(keep.sum()), labels[keep]].mean()
        return loss, np.mean(logits[task][keep].argmax(-1) == labels[keep])

    kind_loss, kind_accuracy = expected("kind", kind)
    odd_loss, odd_accuracy = expected("odd", odd)
    assert results["kind_loss"] == pytest.approx(kind_loss, rel=1e-4)
    assert results["odd_loss"] == pytest.approx(odd_loss, rel=1e-4)
    assert results["loss"] == pytest.approx(kind_loss + odd_loss, rel=1e-4)
    assert results["kind_accuracy"] == pytest.approx(kind_accuracy)
    assert results["odd_accuracy"] == pytest.approx(odd_accuracy)


def test_loss_weights_scale_each_task_in_the_total():
    weights = {"kind": 2, "odd": 0.5}
    model = tfxfer.MultiTaskClassifier(_dense_source(), heads={"kind": 3, "odd": 2}, loss_weights=weights)
    model.compile()
    x = RNG.normal(size=(6, 6)).astype("float32")
    labels = {"kind": RNG.integers(0, 3, 6), "odd": RNG.integers(0, 2, 6)}
    results = model.evaluate(x, labels, batch_size=6, verbose=0, return_dict=True)
    assert results["loss"] == pytest.approx(2 * results["kind_loss"] + 0.5 * results["odd_loss"], rel=1e-4)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros(4, "int64"), "labels as a dict"),
        ({"kind": np.zeros(4, "int64")}, "missing ['odd']"),
        ({"kind": np.zeros(4, "int64"), "odd": np.zeros(4, "int64"), "size": np.zeros(4)}, "unknown ['size']"),
        ({"kind": np.array([0, 3, 1, 1]), "odd": np.zeros(4, "int64")}, "task 'kind' must be integers in [0, 3)"),
        ({"kind": np.zeros(4, "int64"), "odd": np.zeros(3, "int64")}, "one label per example"),
    ],
)
def test_bad_labels_are_refused_with_the_fix(labels, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        _two_tasks().fit(np.zeros((4, 6), "float32"), labels, verbose=0)


def test_bad_heads_are_refused():
    with pytest.raises(ValueError, match="identifiers"):
        tfxfer.MultiTaskClassifier(_dense_source(), heads={"digit class": 10})
    with pytest.raises(ValueError, match="at least 2 classes"):
        tfxfer.MultiTaskClassifier(_dense_source(), heads={"digit": 1})
    with pytest.raises(ValueError, match="name every task"):
        tfxfer.MultiTaskClassifier(_dense_source(), heads={"a": 2, "b": 2}, loss_weights={"a": 1})


def test_a_task_with_few_labels_is_repeated_to_as_many_rows_as_the_other():
    x = np.arange(8, dtype="float32")[:, None].repeat(6, axis=1)
    labels = {"kind": np.array([2, 1, -1, -1, -1, -1, -1, -1]), "odd": np.array([-1, 1, 0, 1, 0, 1, 1, 0])}
    balanced_x, balanced, _ = _two_tasks().balance_tasks(x, labels)
    kind_rows, odd_rows = balanced["kind"] >= 0, balanced["odd"] >= 0
    assert kind_rows.sum() == odd_rows.sum() == 7 and not (kind_rows & odd_rows).any()
    assert sorted(np.bincount(balanced_x[kind_rows, 0].astype(int))) == [3, 4]  # rows 0 and 1, cycled
    np.testing.assert_array_equal(balanced["kind"][kind_rows], 2 - balanced_x[kind_rows, 0])  # labels follow rows
    assert sorted(balanced_x[odd_rows, 0]) == list(range(1, 8))
    everything = {"kind": np.zeros(8, "int64"), "odd": np.ones(8, "int64")}
    assert _two_tasks().balance_tasks(x, everything)[0] is x  # nothing to balance


def test_labelled_accuracy_skips_missing_labels_and_round_trips():
    metric = LabelledAccuracy(name="accuracy")
    metric.update_state(np.array([1, -1, 0, -1]), np.array([[0.1, 0.9], [0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]))
    assert float(metric.result()) == pytest.approx(0.5)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(clone) is LabelledAccuracy and clone.name == "accuracy"


def _digit_tasks():
    """Digits 5-9 (the shipped source learned 0-4): the digit, 5 labels per
    class on one half; odd or even, all labelled, on the other half."""
    images, digits = digit_images((5, 6, 7, 8, 9))
    order = np.random.default_rng(0).permutation(len(digits))
    images, digits = images[order], digits[order]
    half = len(digits) // 2
    digit = np.full(len(digits), -1)
    for value in range(5, 10):
        digit[np.flatnonzero(digits[:half] == value)[:5]] = value - 5
    parity = np.where(np.arange(len(digits)) >= half, digits % 2, -1)
    return images, {"digit": digit, "parity": parity}, digits


def test_digit_tasks_train_with_fit_head_then_fine_tune_and_survive_every_round_trip(tmp_path):
    images, labels, digits = _digit_tasks()
    keras.utils.set_random_seed(0)
    model = tfxfer.MultiTaskClassifier(tfxfer.HubFeatures(tfxfer.preset_path("embedded")), {"digit": 5, "parity": 2})
    source_before = model.backbone.get_weights()
    tfxfer.fit_head(model, images, labels, progress=False, verbose=0)
    for old, new in zip(source_before, model.backbone.get_weights()):
        np.testing.assert_array_equal(old, new)
    predicted = model.predict(images, verbose=0)
    assert np.mean(predicted["digit"].argmax(-1) == digits - 5) > 0.5  # chance: 0.2
    assert np.mean(predicted["parity"].argmax(-1) == digits % 2) > 0.8

    tfxfer.fine_tune(model, images, labels, epochs=2, warmup_epochs=0, verbose=0)
    assert not np.allclose(source_before[0], model.backbone.get_weights()[0])

    model.save(tmp_path / "tasks.keras")
    loaded = keras.saving.load_model(tmp_path / "tasks.keras", safe_mode=False)  # a SavedModel source
    expected = model.predict(images[:16], verbose=0)
    for task, values in loaded.predict(images[:16], verbose=0).items():
        np.testing.assert_allclose(values, expected[task], atol=1e-5)
    assert loaded.heads == {"digit": 5, "parity": 2}

    tfxfer.export(model, tmp_path / "served")
    reloaded = tf.saved_model.load(str(tmp_path / "served"))  # kept: its function reads its variables
    served = reloaded.serve(tf.constant(images[:16].astype("uint8")))
    assert sorted(served) == ["digit", "parity"]
    for task, probabilities in served.items():
        want = keras.ops.softmax(model(images[:16].astype("uint8").astype("float32"), training=False)[task])
        np.testing.assert_allclose(probabilities.numpy(), np.asarray(want), atol=1e-5)
