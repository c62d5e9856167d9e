"""Importance weights, gradient reversal, CORAL/MMD alignment, DANN: numbers that could fail."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import norm, spearmanr

from tfxfer.methods import (
    DomainAdversarial,
    FeatureAlignment,
    GradientReversal,
    GradientReversalSchedule,
    coral_loss,
    domain_classifier_weights,
    kernel_mean_matching,
    mmd_loss,
)


@pytest.fixture(scope="module")
def gaussians():
    rng = np.random.default_rng(0)
    source = rng.normal(0.0, 1.0, size=(400, 1))
    target = rng.normal(1.0, 1.0, size=(400, 1))
    true_ratio = norm.pdf(source[:, 0], 1.0, 1.0) / norm.pdf(source[:, 0], 0.0, 1.0)
    return source, target, true_ratio


def test_domain_classifier_weights_follow_the_true_density_ratio(gaussians):
    source, target, true_ratio = gaussians
    estimate = domain_classifier_weights(source, target)
    assert spearmanr(estimate.weights, true_ratio).statistic >= 0.9
    assert estimate.weights.mean() == pytest.approx(1.0, abs=1e-5)
    assert 20 < estimate.effective_sample_size < 400  # a shift costs samples
    assert "effective sample size" in str(estimate)


def test_kernel_mean_matching_follows_the_true_density_ratio(gaussians):
    source, target, true_ratio = gaussians
    estimate = kernel_mean_matching(source[:200], target[:200])
    assert spearmanr(estimate.weights, true_ratio[:200]).statistic >= 0.9
    assert estimate.weights.min() >= 0


def test_weights_refuse_mismatched_features():
    with pytest.raises(ValueError, match="source has 3 features per sample and target 2"):
        domain_classifier_weights(np.zeros((10, 3)), np.zeros((10, 2)))


def test_gradient_reversal_flips_the_gradient_with_its_scale():
    layer = GradientReversal(0.3)
    x = tf.constant([[1.0, -2.0, 3.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.constant([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(y, x)
    np.testing.assert_allclose(tape.gradient(loss, x), [[-0.3, -0.6, -0.9]], rtol=1e-6)


def test_schedule_ramps_the_coefficient():
    schedule = GradientReversalSchedule(total_steps=100)
    assert schedule.coefficient(0) == 0.0
    assert 0.98 < schedule.coefficient(50) < 1.0 and schedule.coefficient(100) == pytest.approx(0.9999, abs=1e-4)
    assert schedule.coefficient(10) == pytest.approx(2 / (1 + np.exp(-1.0)) - 1)


def test_coral_and_mmd_are_zero_for_identical_batches_and_grow_with_a_shift():
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(64, 8)).astype("float32")
    assert float(coral_loss(batch, batch)) == pytest.approx(0.0, abs=1e-7)
    assert float(mmd_loss(batch, batch)) == pytest.approx(0.0, abs=1e-6)
    other = rng.normal(size=(64, 8)).astype("float32")
    coral = [float(coral_loss(batch, other * s)) for s in (1.0, 2.0, 4.0)]
    mmd = [float(mmd_loss(batch, other + shift)) for shift in (0.0, 1.0, 3.0)]
    assert coral == sorted(coral) and coral[2] > 10 * coral[0]
    assert mmd == sorted(mmd) and mmd[2] > 10 * mmd[0]


def _two_domain_model(branch):
    source_in, target_in = keras.Input((4,), name="source"), keras.Input((4,), name="target")
    features = keras.layers.Dense(8, activation="relu", name="features")
    aligned = branch([features(source_in), features(target_in)])
    return keras.Model([source_in, target_in], keras.layers.Dense(2, name="logits")(aligned))


@pytest.mark.parametrize("branch", [FeatureAlignment("mmd", weight=1.0), DomainAdversarial(hidden=8, coefficient=1.0)])
def test_alignment_branches_train_with_plain_fit_and_survive_keras_files(branch, tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    xs, xt = rng.normal(size=(64, 4)).astype("float32"), rng.normal(2.0, 1.0, size=(64, 4)).astype("float32")
    ys = (xs[:, 0] > 0).astype("int32")
    model = _two_domain_model(branch)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model([xs[:4], xt[:4]])
    assert len(model.losses) == 1 and float(model.losses[0]) > 0  # the branch's loss joins the model's
    callbacks = [GradientReversalSchedule(total_steps=8)] if isinstance(branch, DomainAdversarial) else []
    model.fit([xs, xt], ys, epochs=1, batch_size=16, verbose=0, callbacks=callbacks)
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(restored.predict([xs, xt], verbose=0), model.predict([xs, xt], verbose=0), atol=1e-6)
    if callbacks:
        assert 0 < float(branch.reversal.coefficient) < 1  # ramped by the schedule
