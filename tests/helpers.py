"""Small real models and data the tests share (imported by the tests; the
fixtures that use them live in conftest.py)."""

import contextlib
import signal

import keras

IMAGE_SHAPE = (8, 8, 1)

# `tfxfer fit text` on the offline sample, with no tuning option.
FIT_TEXT_DEFAULTS = ("fit", "text", "--source", "embedded", "--data", "mini_newsgroup")


def small_bn_model(seed=0, named=False):
    """Conv + BatchNorm + pooling: a source with trainable and moving weights.
    `named`: its layers called `conv2d` and `batch_normalization` whatever
    this process built before (Keras numbers default names per process)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(IMAGE_SHAPE)
    x = keras.layers.Conv2D(4, 3, name="conv2d" if named else None)(inputs)
    x = keras.layers.BatchNormalization(name="batch_normalization" if named else None)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x)


@contextlib.contextmanager
def time_limit(seconds):
    """Fails the block with TimeoutError after `seconds` (a hang becomes a failure)."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
