"""Images per second: feature extraction and a fine-tuning train step, tfxfer vs. plain Keras.

For each backbone, input size, batch size, precision and XLA setting, on
random uint8 images (the data pipeline is not what is measured), prints:
  - extraction: tfxfer `extract_features` vs. `keras.Model.predict` on the
    same backbone;
  - training: `ImageClassifier` (source unfrozen, uint8 in) `fit` steps vs.
    the same Keras Applications model + head built by hand on float inputs
    with a Rescaling layer as preprocessing, same optimizer;
  - the fraction of the machine's matrix-multiply peak, measured in the same
    run, that the training step reaches (FLOPs counted as 3x the forward).

    python benchmarks/throughput.py [--backbones mobilenet_v2] [--sizes 96]
        [--batches 32] [--precisions float32 mixed_bfloat16] [--xla off on]
"""

import argparse
import itertools
import tempfile
import time

import numpy as np


def matmul_peak(size=2048, repeats=10, dtype="float32"):
    """Measured FLOP/s of a large matrix multiply on the default device."""
    import tensorflow as tf

    a = tf.random.normal((size, size), dtype=dtype)
    b = tf.random.normal((size, size), dtype=dtype)
    product = tf.function(lambda: tf.matmul(a, b), jit_compile=False)
    product().numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        result = product()
    result.numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def forward_flops(model, size):
    """FLOPs of one forward pass on one image, from TensorFlow's profiler."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    function = tf.function(lambda x: model(x, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec((1, size, size, 3), tf.float32))
    graph = convert_variables_to_constants_v2(concrete).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


def best_rates(runs, images, repeats=3):
    """Images/s of each `runs` function, best of `repeats` rounds that
    alternate between them after a warm-up of each: on a shared machine the
    first runs are slower, so measuring one side fully before the other
    favours the second."""
    for run in runs.values():
        run()  # warm-up: tracing and compilation
    rates = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            rates[name].append(images / (time.perf_counter() - start))
    return {name: max(values) for name, values in rates.items()}


def measure(backbone_name, size, batch, precision, xla, steps):
    import keras

    from tfxfer import ImageBackbone, ImageClassifier, distribute
    from tfxfer.transfer import extract_features

    distribute.set_precision(precision)
    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).integers(0, 256, (batch * steps, size, size, 3), dtype=np.uint8)
    labels = np.arange(len(images)) % 10
    backbone = ImageBackbone(backbone_name, weights=None, input_size=size)
    extraction = best_rates(
        {
            "tfxfer": lambda: extract_features(
                backbone, images, batch_size=batch, cache_dir=tempfile.mkdtemp(), progress=False
            ),
            "keras": lambda: backbone.predict(images, batch_size=batch, verbose=0),
        },
        len(images),
    )

    model = ImageClassifier(backbone, num_classes=10)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=xla)
    application = backbone.application  # the same Keras Applications model, by hand
    inputs = keras.Input((size, size, 3))
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)  # MobileNet/ResNet-v2 style preprocess_input
    outputs = keras.layers.Dense(10, dtype="float32")(keras.layers.GlobalAveragePooling2D()(application(scaled)))
    reference = keras.Model(inputs, outputs)
    reference.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        jit_compile=xla,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    floats = images.astype("float32")
    training = best_rates(
        {
            "tfxfer": lambda: model.fit(images, labels, batch_size=batch, epochs=1, verbose=0),
            "keras": lambda: reference.fit(floats, labels, batch_size=batch, epochs=1, verbose=0),
        },
        len(images),
    )
    flops = 3 * forward_flops(application, size)
    distribute.set_precision("float32")
    return extraction["tfxfer"], extraction["keras"], training["tfxfer"], training["keras"], flops


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["mobilenet_v2"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[96])
    parser.add_argument("--batches", type=int, nargs="+", default=[32])
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--xla", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--steps", type=int, default=8, help="batches per measurement")
    args = parser.parse_args()

    import tensorflow as tf

    device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    peak = matmul_peak()
    print(f"{device}: measured matmul peak {peak / 1e9:.0f} GFLOP/s (float32)")
    header = (
        "backbone",
        "size",
        "batch",
        "precision",
        "xla",
        "extract",
        "predict",
        "ratio",
        "train",
        "keras train",
        "ratio",
        "peak %",
    )
    print("  ".join(f"{h:>11}" for h in header))
    for backbone, size, batch, precision, xla in itertools.product(
        args.backbones, args.sizes, args.batches, args.precisions, args.xla
    ):
        ours, plain, train_ours, train_plain, flops = measure(backbone, size, batch, precision, xla == "on", args.steps)
        row = (
            backbone,
            size,
            batch,
            precision,
            xla,
            f"{ours:.0f}",
            f"{plain:.0f}",
            f"{ours / plain:.2f}",
            f"{train_ours:.0f}",
            f"{train_plain:.0f}",
            f"{train_ours / train_plain:.2f}",
            f"{100 * train_ours * flops / peak:.1f}",
        )
        print("  ".join(f"{str(c):>11}" for c in row), flush=True)


if __name__ == "__main__":
    main()
