"""Per-group learning rates scale each variable's update, not its gradient."""

import keras
import numpy as np
import pytest

from tfxfer.transfer import SGD, Adam, AdamW

X = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
Y = np.ones((8, 1), "float32")


def _one_step_updates(optimizer, loss_weight=1.0):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(1, name="b")(keras.layers.Dense(2, name="a")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer, "mse", loss_weights=loss_weight)
    before = [np.array(v) for v in model.trainable_weights]
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0)  # one step
    return {v.path: np.array(v) - b for v, b in zip(model.trainable_weights, before)}


@pytest.mark.parametrize(
    "plain, scaled",
    [
        (lambda: keras.optimizers.Adam(0.1), lambda m: Adam(0.1, rate_multipliers=m)),
        (
            lambda: keras.optimizers.AdamW(0.1, weight_decay=0.3),
            lambda m: AdamW(0.1, weight_decay=0.3, rate_multipliers=m),
        ),
        (lambda: keras.optimizers.SGD(0.1, momentum=0.9), lambda m: SGD(0.1, momentum=0.9, rate_multipliers=m)),
    ],
)
def test_multiplier_scales_the_update_of_its_group_only(plain, scaled):
    reference = _one_step_updates(plain())
    updates = _one_step_updates(scaled({"a": 0.1}))
    assert set(updates) == {"a/kernel", "a/bias", "b/kernel", "b/bias"}
    for path, update in updates.items():
        factor = 0.1 if path.startswith("a/") else 1.0
        assert np.abs(reference[path]).sum() > 0
        np.testing.assert_allclose(update, factor * reference[path], rtol=1e-4, atol=1e-7, err_msg=path)


def test_scaling_the_gradient_would_not_slow_adam_down():
    # Why the update is scaled: Adam's step ignores a constant factor on the gradient.
    reference = _one_step_updates(keras.optimizers.Adam(0.1))
    scaled_gradients = _one_step_updates(keras.optimizers.Adam(0.1), loss_weight=0.1)
    np.testing.assert_allclose(scaled_gradients["a/kernel"], reference["a/kernel"], rtol=1e-2)  # not 0.1x


def test_prefixes_match_whole_path_segments():
    optimizer = Adam(rate_multipliers={"a": 0.5, "a/kernel": 0.2})
    assert optimizer._factor_of_path("a/kernel") == 0.2
    assert optimizer._factor_of_path("a/bias") == 0.5
    assert optimizer._factor_of_path("ab/kernel") == 1.0


def test_config_round_trip_keeps_the_multipliers():
    optimizer = AdamW(0.01, weight_decay=0.1, rate_multipliers={"backbone/conv": 0.1})
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, AdamW) and restored.rate_multipliers == {"backbone/conv": 0.1}
