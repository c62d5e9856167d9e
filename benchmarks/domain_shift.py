"""Domain adaptation and L2-SP on a real shift, offline: scikit-learn's digits.

Source: half of the 8x8 digits, labelled. Target: the other half, shifted
(`--shift noisy`: half the contrast, a brighter background and pixel
noise; `inverted`: 16 - x plus noise; `rotated`: 90 degrees), unlabelled
for training and used for the test. Target accuracy, mean ± std over seeds,
for the same small CNN trained:
  - on the source only;
  - with importance weights (domain classifier on the pixels) as sample_weight;
  - with a DANN branch (gradient reversal, ramped coefficient);
  - with a CORAL or an MMD alignment loss between source and target features.
Then instance transfer with a few labelled target images (`--target-labels`
per class, the rest of the target half for the test), LogisticRegression on
the pixels: on the target labels alone, the source alone, both pooled, the
source importance-weighted plus the target labels, and TrAdaBoost.
Then few-label fine-tuning: the shipped digits 0-4 source on digits 5-9 from
`--labels` images per class, fine-tuned with and without L2-SP.

    python benchmarks/domain_shift.py [--seeds 3] [--shift noisy]
    python benchmarks/domain_shift.py --data cifar10   # ../shared/data: clean vs. corrupted CIFAR-10
"""

import argparse
import os
import tempfile

import numpy as np


def shifted(images, kind, rng):
    if kind == "inverted":
        return np.clip(16.0 - images + rng.normal(0, 2.0, images.shape), 0, 16).astype("float32")
    if kind == "noisy":  # lower contrast, a brighter background, strong pixel noise
        return np.clip(0.5 * images + 4.0 + rng.normal(0, 3.0, images.shape), 0, 16).astype("float32")
    return np.rot90(images, k=1, axes=(1, 2)).copy()


def split_domains(kind, seed):
    from tfxfer.data import digit_images

    images, labels = digit_images(tuple(range(10)))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    source, target = order[: len(order) // 2], order[len(order) // 2 :]
    return (images[source], labels[source]), (shifted(images[target], kind, rng), labels[target])


def _features(input_shape):
    """The shared feature layers: the digits CNN on images, an MLP on cached features."""
    import keras

    from tfxfer.sources import feature_extractor

    if len(input_shape) == 3:
        return feature_extractor()
    return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(256, activation="relu")])


SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
CIFAR = os.path.join(SHARED, "cifar10", "cifar10-train-20k.npz")
WEIGHTS = os.path.join(SHARED, "weights", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")


def corrupted(images, rng):
    """CIFAR-C style: 70% contrast and Gaussian pixel noise (sigma 5). Stronger
    settings (half contrast, sigma 10-20, blur) leave the frozen ImageNet
    features near chance, with nothing left to adapt."""
    x = images.astype("float32")
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = 0.7 * (x - mean) + mean + rng.normal(0, 5.0, x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def cifar_domains(seed, per_domain, cache):
    """MobileNetV2 (ImageNet, 96 px, frozen) features of clean source images
    and of other, corrupted target images."""
    from tfxfer import ImageBackbone
    from tfxfer.data import load_cifar10
    from tfxfer.transfer import extract_features

    (x, y), _ = load_cifar10(CIFAR)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))[: 2 * per_domain]
    source, target = order[:per_domain], order[per_domain:]
    backbone = ImageBackbone("mobilenet_v2", weights=WEIGHTS, input_size=96)
    xs, _ = extract_features(backbone, x[source], batch_size=128, cache_dir=cache, progress=False)
    xt, _ = extract_features(backbone, corrupted(x[target], rng), batch_size=128, cache_dir=cache, progress=False)
    return (np.asarray(xs), y[source].astype(int)), (np.asarray(xt), y[target].astype(int))


def _compile(model):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def single_domain(xs, ys, xt, yt, seed, epochs, sample_weight=None):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([_features(xs.shape[1:]), keras.layers.Dense(10)])
    _compile(model)
    model.fit(xs, ys, sample_weight=sample_weight, epochs=epochs, batch_size=32, verbose=0)
    return model.evaluate(xt, yt, verbose=0)[1]


def two_domain(branch_factory, xs, ys, xt, yt, seed, epochs):
    import keras

    from tfxfer.methods import GradientReversalSchedule

    keras.utils.set_random_seed(seed)
    features = _features(xs.shape[1:])
    source_in, target_in = keras.Input(xs.shape[1:]), keras.Input(xs.shape[1:])
    branch = branch_factory()
    logits = keras.layers.Dense(10, name="logits")
    model = keras.Model([source_in, target_in], logits(branch([features(source_in), features(target_in)])))
    _compile(model)
    pairs = np.random.default_rng(seed).choice(len(xt), len(xs))  # a target batch beside each source batch
    steps = epochs * -(-len(xs) // 32)
    model.fit([xs, xt[pairs]], ys, epochs=epochs, batch_size=32, verbose=0, callbacks=[GradientReversalSchedule(steps)])
    classifier = keras.Sequential([features, logits])
    _compile(classifier)
    return classifier.evaluate(xt, yt, verbose=0)[1]


def l2_sp_fine_tuning(per_class, seed, epochs, strength):
    import keras

    from tfxfer import HubFeatures, ImageClassifier, preset_path
    from tfxfer.data import digit_images, few_label_split

    images, labels = digit_images((5, 6, 7, 8, 9))
    labels = labels - 5
    train, test = few_label_split(labels, per_class, seed)
    keras.utils.set_random_seed(seed)
    model = ImageClassifier(
        HubFeatures(preset_path("digits04_cnn"), trainable=True), 5, dropout=0.0, input_shape=(8, 8, 1), l2_sp=strength
    )
    _compile(model)
    model.fit(images[train], labels[train], epochs=epochs, batch_size=8, verbose=0)
    return model.evaluate(images[test], labels[test], verbose=0)[1]


def instance_transfer(xs, ys, xt, yt, per_class, seed):
    """Target accuracy of each instance-transfer row (see the module's doc)."""
    from sklearn.linear_model import LogisticRegression

    from tfxfer.methods import TrAdaBoost, domain_classifier_weights

    rng = np.random.default_rng(seed)
    labelled = np.concatenate([rng.permutation(np.flatnonzero(yt == c))[:per_class] for c in np.unique(yt)])
    test = np.setdiff1d(np.arange(len(yt)), labelled)
    xs, xt = xs.reshape(len(xs), -1) / 16.0, xt.reshape(len(xt), -1) / 16.0
    xl, yl = xt[labelled], yt[labelled]

    def logistic(x, y, weights=None):
        model = LogisticRegression(max_iter=2000).fit(x, y, sample_weight=weights)
        return model.score(xt[test], yt[test])

    importance = domain_classifier_weights(xs, xt).weights
    return {
        "target labels only": logistic(xl, yl),
        "source only": logistic(xs, ys),
        "source + target": logistic(np.concatenate([xs, xl]), np.concatenate([ys, yl])),
        "importance weights + target": logistic(
            np.concatenate([xs, xl]), np.concatenate([ys, yl]), np.concatenate([importance, np.ones(len(yl))])
        ),
        "TrAdaBoost": TrAdaBoost(n_estimators=10).fit(xs, ys, xl, yl).score(xt[test], yt[test]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shift", choices=["noisy", "inverted", "rotated"], default="noisy")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--labels", type=int, default=5, help="labels per class for the L2-SP part")
    parser.add_argument("--target-labels", type=int, default=5, help="labelled target images per class (TrAdaBoost)")
    parser.add_argument(
        "--only", choices=["all", "instances"], default="all", help="instances: the TrAdaBoost rows alone"
    )
    parser.add_argument("--data", choices=["digits", "cifar10"], default="digits")
    parser.add_argument("--per-domain", type=int, default=3000, help="CIFAR-10 images per domain")
    args = parser.parse_args()
    cache = tempfile.mkdtemp(prefix="tfxfer-shift-")
    if args.data == "digits" and args.target_labels > 0:
        domains = [split_domains(args.shift, seed) for seed in range(args.seeds)]
        rows = [
            instance_transfer(*source, *target, args.target_labels, seed)
            for seed, (source, target) in enumerate(domains)
        ]
        print(f"digits -> {args.shift} digits, {args.target_labels} labelled target images/class, LogisticRegression")
        for name in rows[0]:
            values = [row[name] for row in rows]
            print(f"  {name:28} {100 * np.mean(values):5.1f} ± {100 * np.std(values):4.1f}")
        if args.only == "instances":
            return

    from tfxfer.methods import DomainAdversarial, FeatureAlignment, domain_classifier_weights

    methods = {
        "source only": lambda d, s: single_domain(*d, s, args.epochs),
        "importance weights": lambda d, s: single_domain(
            *d,
            s,
            args.epochs,
            sample_weight=domain_classifier_weights(d[0].reshape(len(d[0]), -1), d[2].reshape(len(d[2]), -1)).weights,
        ),
        "DANN": lambda d, s: two_domain(lambda: DomainAdversarial(hidden=64, weight=0.1), *d, s, args.epochs),
        "CORAL": lambda d, s: two_domain(lambda: FeatureAlignment("coral", weight=10.0), *d, s, args.epochs),
        "MMD": lambda d, s: two_domain(lambda: FeatureAlignment("mmd", weight=1.0), *d, s, args.epochs),
    }
    scores = {name: [] for name in methods}
    for seed in range(args.seeds):
        if args.data == "cifar10":
            (xs, ys), (xt, yt) = cifar_domains(seed, args.per_domain, cache)
        else:
            (xs, ys), (xt, yt) = split_domains(args.shift, seed)
        for name, run in methods.items():
            scores[name].append(run((xs, ys, xt, yt), seed))
    title = (
        "CIFAR-10 -> corrupted CIFAR-10 (frozen MobileNetV2 features, MLP adapted)"
        if args.data == "cifar10"
        else f"digits -> {args.shift} digits"
    )
    print(f"{title}, target accuracy %, mean ± std over {args.seeds} seeds")
    for name, values in scores.items():
        print(f"  {name:20} {100 * np.mean(values):5.1f} ± {100 * np.std(values):4.1f}")

    if args.labels <= 0 or args.data == "cifar10":
        return
    print(f"\ndigits 0-4 source -> digits 5-9, {args.labels} labels/class, fine-tuned; test accuracy %")
    for strength in (None, 1e-3, 1e-2):
        values = [l2_sp_fine_tuning(args.labels, seed, args.epochs, strength) for seed in range(args.seeds)]
        label = "no L2-SP" if strength is None else f"L2-SP {strength:g}"
        print(f"  {label:20} {100 * np.mean(values):5.1f} ± {100 * np.std(values):4.1f}")


if __name__ == "__main__":
    main()
