"""Run by test_distribute.py in a fresh process: the CPU split into 2 logical
devices (possible only before TensorFlow starts), MirroredStrategy checks.

    python tests/two_cpu_checks.py
prints one JSON line of measured figures.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tfxfer import ImageClassifier, distribute  # noqa: E402
from tfxfer.methods import (  # noqa: E402
    DomainAdversarial,
    FeatureAlignment,
    FeatureMapDistance,
    SpectralShrinkage,
    distill,
)


def classifier():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.BatchNormalization(trainable=False)(x)  # BN frozen, as fine_tune's default
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = ImageClassifier(keras.Model(inputs, x), num_classes=3, dropout=0.0, l2_sp=1e-2)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    return model


def two_domain(branch):
    keras.utils.set_random_seed(0)
    source, target = keras.Input((4,)), keras.Input((4,))
    features = keras.layers.Dense(8, activation="relu")
    model = keras.Model([source, target], keras.layers.Dense(2)(branch([features(source), features(target)])))
    model.compile(
        optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


def max_difference(a, b):
    return float(max(np.abs(x - y).max() for x, y in zip(a.get_weights(), b.get_weights())))


def main():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 32)
    mirrored = distribute.strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    results = {"replicas": mirrored.num_replicas_in_sync}

    one = classifier()
    one.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)  # the same global batch
    with mirrored.scope():
        two = classifier()
    two.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    results["classifier_max_difference"] = max_difference(one, two)
    results["weights_moved"] = float(
        max(np.abs(w - v).max() for w, v in zip(classifier().get_weights(), one.get_weights()))
    )

    # Batches of 64, 32 a replica: enough rows for per-replica covariances to be close to the batch's.
    xs, xt = rng.normal(size=(256, 4)).astype("float32"), rng.normal(1.0, 1.0, size=(256, 4)).astype("float32")
    ys = rng.integers(0, 2, 256)
    for name, make in (
        ("coral", lambda weight: FeatureAlignment("coral", weight=weight)),
        ("mmd", lambda weight: FeatureAlignment("mmd", weight=weight)),
        ("dann", lambda weight: DomainAdversarial(hidden=4, coefficient=1.0, weight=weight)),
    ):
        single, without_term = two_domain(make(1.0)), two_domain(make(0.0))
        for model in (single, without_term):
            model.fit([xs, xt], ys, batch_size=64, epochs=1, shuffle=False, verbose=0)
        with mirrored.scope():
            replicated = two_domain(make(1.0))
        history = replicated.fit([xs, xt], ys, batch_size=64, epochs=1, shuffle=False, verbose=0)
        results[f"{name}_loss_finite"] = bool(np.isfinite(history.history["loss"][-1]))
        # Batch statistics (covariances, MMD) are per replica: close to, not equal to, one device.
        results[f"{name}_max_difference"] = max_difference(single, replicated)
        # ... and far closer to it than to one device trained without the term.
        results[f"{name}_without_term_difference"] = max_difference(without_term, replicated)

    # Model-based regularizers and distillation, trained under the strategy.
    with mirrored.scope():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 1))
        source = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(6)])
        features = SpectralShrinkage(1e-3)(FeatureMapDistance.of(source, 1.0)([inputs, source(inputs)]))
        regularized = keras.Model(inputs, keras.layers.Dense(3)(features))
        regularized.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = regularized.fit(x, y, batch_size=16, epochs=1, verbose=0)
    results["regularizers_loss_finite"] = bool(np.isfinite(history.history["loss"][-1]))
    with mirrored.scope():
        student = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
        history = distill(regularized, student, x, y, epochs=1, batch_size=16, verbose=0)
    results["distillation_loss_finite"] = bool(np.isfinite(history.history["distillation_loss"][-1]))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
