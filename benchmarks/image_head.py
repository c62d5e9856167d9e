"""Head training on a frozen MobileNetV2: cached features vs. plain frozen fit.

Reads ../shared/data (CIFAR-10 20k subset, ImageNet MobileNetV2 no-top
weights), holds out a validation split, and prints, measured side by side in
one run:
  - wall-clock of `epochs` epochs of head training, cached vs. naive frozen
    `fit` (the ratio), and both validation accuracies;
  - feature-extraction throughput, tfxfer vs. `keras.Model.predict` of the
    same backbone at the same batch size;
  - linear-probe validation accuracy vs. scikit-learn LogisticRegression on
    the same features;
  - peak resident memory of the extraction.

    python benchmarks/image_head.py [--images 20000] [--epochs 10]
"""

import argparse
import os
import resource
import sys
import tempfile
import time

import numpy as np

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
CIFAR = os.path.join(SHARED, "cifar10", "cifar10-train-20k.npz")
WEIGHTS = os.path.join(SHARED, "weights", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    for path in (CIFAR, WEIGHTS):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: this benchmark reads the shared data (see ../shared/data/README.md)")

    import keras
    from sklearn.linear_model import LogisticRegression

    from tfxfer import ImageBackbone, ImageClassifier
    from tfxfer.data.cifar10 import load_cifar10
    from tfxfer.transfer.feature_cache import extract_features, fit_head

    (x, y), _ = load_cifar10(CIFAR)
    order = np.random.default_rng(0).permutation(len(x))[: args.images]
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    (x_train, y_train), (x_val, y_val) = (x[:split], y[:split]), (x[split:], y[split:])
    print(f"CIFAR-10: {len(x_train)} train / {len(x_val)} validation images, MobileNetV2 ImageNet at {args.size}px")

    def classifier():
        keras.utils.set_random_seed(0)
        backbone = ImageBackbone("mobilenet_v2", weights=WEIGHTS, input_size=args.size)
        backbone.trainable = False
        model = ImageClassifier(backbone, num_classes=10, dropout=0.0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        return model

    cache = tempfile.mkdtemp(prefix="tfxfer-bench-")

    # Throughput: tfxfer extraction (cache miss, streamed to disk) and plain
    # predict, same backbone and batch size; extraction first so the peak
    # memory below is the extraction's own.
    model = classifier()
    rss_before = peak_rss_mib()
    start = time.perf_counter()
    features, _ = extract_features(model.backbone, x_train, batch_size=args.batch, cache_dir=cache, progress=False)
    ours = len(x_train) / (time.perf_counter() - start)
    rss_extraction = peak_rss_mib()
    start = time.perf_counter()
    model.backbone.predict(x_train, batch_size=args.batch, verbose=0)
    plain = len(x_train) / (time.perf_counter() - start)
    print(f"extraction: keras predict {plain:.0f} img/s, tfxfer {ours:.0f} img/s, ratio {ours / plain:.3f}")
    print(f"peak RSS of the process after extraction: {rss_extraction:.0f} MiB (before: {rss_before:.0f} MiB; "
          f"features on disk: {features.nbytes / 2**20:.0f} MiB)")

    # Head training, cached (cache already warm for train; val extracted once).
    start = time.perf_counter()
    fit_head(model, x_train, y_train, epochs=args.epochs, batch_size=args.batch, cache_dir=cache, progress=False, verbose=0)
    cached_time = time.perf_counter() - start
    cached_acc = model.evaluate(x_val, y_val, batch_size=args.batch, verbose=0)[1]

    naive = classifier()
    start = time.perf_counter()
    naive.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch, verbose=0)
    naive_time = time.perf_counter() - start
    naive_acc = naive.evaluate(x_val, y_val, batch_size=args.batch, verbose=0)[1]
    print(f"{args.epochs} epochs of head training: cached {cached_time:.1f} s, naive frozen fit {naive_time:.1f} s, "
          f"ratio {naive_time / cached_time:.1f}x; validation accuracy cached {cached_acc:.4f}, naive {naive_acc:.4f}")

    val_features, _ = extract_features(model.backbone, x_val, batch_size=args.batch, cache_dir=cache, progress=False)
    sklearn = LogisticRegression(max_iter=2000).fit(np.asarray(features), y_train)
    print(f"linear probe validation accuracy: tfxfer head {cached_acc:.4f}, "
          f"sklearn LogisticRegression {sklearn.score(np.asarray(val_features), y_val):.4f}")


if __name__ == "__main__":
    main()
