"""Head training on a frozen MobileNetV2: cached features vs. plain frozen fit.

Reads ../shared/data (CIFAR-10 20k subset, ImageNet MobileNetV2 no-top
weights), holds out a validation split, and prints, measured side by side in
one run:
  - wall-clock of `epochs` epochs of head training, cached vs. naive frozen
    `fit` (the ratio), and both validation accuracies;
  - feature-extraction throughput, tfxfer vs. `keras.Model.predict` of the
    same backbone at the same batch size;
  - linear-probe validation accuracy, `fit_head`'s default recipe vs.
    scikit-learn LogisticRegression on the same features;
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
    parser.add_argument("--throughput-images", type=int, default=2048)
    args = parser.parse_args()
    for path in (CIFAR, WEIGHTS):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: this benchmark reads the shared data (see ../shared/data/README.md)")

    import keras
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tfxfer import ImageBackbone, ImageClassifier
    from tfxfer.data import load_cifar10
    from tfxfer.transfer import extract_features, fit_head

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
    model = classifier()

    # Head training from a cold cache (the extraction counted in its time),
    # then the validation features: the process peak so far is the
    # extraction's own, over all the images.
    rss_before = peak_rss_mib()
    start = time.perf_counter()
    fit_head(
        model, x_train, y_train, epochs=args.epochs, batch_size=args.batch, cache_dir=cache, progress=False, verbose=0
    )
    cold_time = time.perf_counter() - start
    features, _ = extract_features(model.backbone, x_train, batch_size=args.batch, cache_dir=cache, progress=False)
    val_features, _ = extract_features(model.backbone, x_val, batch_size=args.batch, cache_dir=cache, progress=False)
    rss_extraction = peak_rss_mib()
    resized = len(x) * args.size * args.size * 3 * 4 / 2**20
    print(
        f"peak RSS over the extraction of {len(x)} images: {rss_extraction:.0f} MiB "
        f"(+{rss_extraction - rss_before:.0f} MiB over the {rss_before:.0f} MiB before; features on disk "
        f"{(features.nbytes + val_features.nbytes) / 2**20:.0f} MiB; all images resized would be {resized:.0f} MiB)"
    )

    # Throughput on the same images and batch size, alternating the two after
    # a warm-up of each (the first runs on this machine are slower), best of 3.
    sample = x_train[: args.throughput_images]
    rates = {"tfxfer": [], "predict": []}
    for round_ in range(4):
        for name in rates:
            start = time.perf_counter()
            if name == "tfxfer":  # a fresh cache folder: a miss every time
                extract_features(
                    model.backbone, sample, batch_size=args.batch, cache_dir=tempfile.mkdtemp(), progress=False
                )
            else:
                model.backbone.predict(sample, batch_size=args.batch, verbose=0)
            if round_:
                rates[name].append(len(sample) / (time.perf_counter() - start))
    ours, plain = max(rates["tfxfer"]), max(rates["predict"])
    print(
        f"extraction of {len(sample)} images, best of 3: keras predict {plain:.0f} img/s, "
        f"tfxfer {ours:.0f} img/s, ratio {ours / plain:.3f}"
    )

    # The same head training again, the features now on disk.
    model = classifier()
    start = time.perf_counter()
    fit_head(
        model, x_train, y_train, epochs=args.epochs, batch_size=args.batch, cache_dir=cache, progress=False, verbose=0
    )
    cached_time = time.perf_counter() - start
    cached_acc = model.evaluate(x_val, y_val, batch_size=args.batch, verbose=0)[1]

    naive = classifier()
    start = time.perf_counter()
    naive.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch, verbose=0)
    naive_time = time.perf_counter() - start
    naive_acc = naive.evaluate(x_val, y_val, batch_size=args.batch, verbose=0)[1]
    print(
        f"{args.epochs} epochs of head training: naive frozen fit {naive_time:.1f} s; cached {cold_time:.1f} s "
        f"with the extraction (ratio {naive_time / cold_time:.1f}x), {cached_time:.1f} s from a warm cache "
        f"(ratio {naive_time / cached_time:.1f}x); validation accuracy cached {cached_acc:.4f}, naive {naive_acc:.4f}"
    )

    # Linear probe: fit_head's own recipe (an uncompiled classifier: Adam at
    # 3e-3, warm-up + cosine; default dropout) vs. scikit-learn on the same
    # features, as a user would call it and standardized with C picked on
    # the validation split (which favours it).
    probe = ImageClassifier(model.backbone, num_classes=10)
    fit_head(
        probe, x_train, y_train, epochs=args.epochs, batch_size=args.batch, cache_dir=cache, progress=False, verbose=0
    )
    probe_acc = probe.evaluate(x_val, y_val, batch_size=args.batch, verbose=0)[1]
    train_f, val_f = np.asarray(features), np.asarray(val_features)
    plain_lr = LogisticRegression(max_iter=2000).fit(train_f, y_train).score(val_f, y_val)
    scaled = {
        c: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        .fit(train_f, y_train)
        .score(val_f, y_val)
        for c in (1.0, 0.1, 0.01)
    }
    best_c = max(scaled, key=scaled.get)
    print(
        f"linear probe validation accuracy: tfxfer fit_head {probe_acc:.4f}; sklearn LogisticRegression "
        f"{plain_lr:.4f}, standardized with C={best_c} (best of 1, 0.1, 0.01 on validation) {scaled[best_c]:.4f}"
    )


if __name__ == "__main__":
    main()
