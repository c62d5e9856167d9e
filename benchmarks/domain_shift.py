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
Then few-label fine-tuning: the shipped digits 0-4 source on digits 5-9 from
`--labels` images per class, fine-tuned with and without L2-SP.

    python benchmarks/domain_shift.py [--seeds 3] [--shift noisy]
"""

import argparse

import numpy as np


def shifted(images, kind, rng):
    if kind == "inverted":
        return np.clip(16.0 - images + rng.normal(0, 2.0, images.shape), 0, 16).astype("float32")
    if kind == "noisy":  # lower contrast, a brighter background, strong pixel noise
        return np.clip(0.5 * images + 4.0 + rng.normal(0, 3.0, images.shape), 0, 16).astype("float32")
    return np.rot90(images, k=1, axes=(1, 2)).copy()


def split_domains(kind, seed):
    from tfxfer.sources.embedded import digits

    images, labels = digits(tuple(range(10)))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    source, target = order[: len(order) // 2], order[len(order) // 2 :]
    return (images[source], labels[source]), (shifted(images[target], kind, rng), labels[target])


def _features():
    from tfxfer.sources.embedded import feature_extractor

    return feature_extractor()


def _compile(model):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])


def single_domain(xs, ys, xt, yt, seed, epochs, sample_weight=None):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([_features(), keras.layers.Dense(10)])
    _compile(model)
    model.fit(xs, ys, sample_weight=sample_weight, epochs=epochs, batch_size=32, verbose=0)
    return model.evaluate(xt, yt, verbose=0)[1]


def two_domain(branch_factory, xs, ys, xt, yt, seed, epochs):
    import keras

    from tfxfer.methods import GradientReversalSchedule

    keras.utils.set_random_seed(seed)
    features = _features()
    source_in, target_in = keras.Input((8, 8, 1)), keras.Input((8, 8, 1))
    branch = branch_factory()
    logits = keras.layers.Dense(10, name="logits")
    model = keras.Model([source_in, target_in], logits(branch([features(source_in), features(target_in)])))
    _compile(model)
    pairs = np.random.default_rng(seed).choice(len(xt), len(xs))  # a target batch beside each source batch
    steps = epochs * -(-len(xs) // 32)
    model.fit([xs, xt[pairs]], ys, epochs=epochs, batch_size=32, verbose=0,
              callbacks=[GradientReversalSchedule(steps)])
    classifier = keras.Sequential([features, logits])
    _compile(classifier)
    return classifier.evaluate(xt, yt, verbose=0)[1]


def l2_sp_fine_tuning(per_class, seed, epochs, strength):
    import keras

    from tfxfer import HubFeatures, ImageClassifier
    from tfxfer.demo import few_label_split
    from tfxfer.sources.embedded import digits, embedded_source_path

    images, labels = digits((5, 6, 7, 8, 9))
    labels = labels - 5
    train, test = few_label_split(labels, per_class, seed)
    keras.utils.set_random_seed(seed)
    model = ImageClassifier(HubFeatures(embedded_source_path(), trainable=True), 5, dropout=0.0,
                            input_shape=(8, 8, 1), l2_sp=strength)
    _compile(model)
    model.fit(images[train], labels[train], epochs=epochs, batch_size=8, verbose=0)
    return model.evaluate(images[test], labels[test], verbose=0)[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shift", choices=["noisy", "inverted", "rotated"], default="noisy")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--labels", type=int, default=5, help="labels per class for the L2-SP part")
    args = parser.parse_args()

    from tfxfer.methods import DomainAdversarial, FeatureAlignment, domain_classifier_weights

    methods = {
        "source only": lambda d, s: single_domain(*d, s, args.epochs),
        "importance weights": lambda d, s: single_domain(
            *d, s, args.epochs,
            sample_weight=domain_classifier_weights(d[0].reshape(len(d[0]), -1), d[2].reshape(len(d[2]), -1)).weights),
        "DANN": lambda d, s: two_domain(lambda: DomainAdversarial(hidden=64, weight=0.1), *d, s, args.epochs),
        "CORAL": lambda d, s: two_domain(lambda: FeatureAlignment("coral", weight=10.0), *d, s, args.epochs),
        "MMD": lambda d, s: two_domain(lambda: FeatureAlignment("mmd", weight=1.0), *d, s, args.epochs),
    }
    scores = {name: [] for name in methods}
    for seed in range(args.seeds):
        (xs, ys), (xt, yt) = split_domains(args.shift, seed)
        for name, run in methods.items():
            scores[name].append(run((xs, ys, xt, yt), seed))
    print(f"digits -> {args.shift} digits, target accuracy %, mean ± std over {args.seeds} seeds")
    for name, values in scores.items():
        print(f"  {name:20} {100 * np.mean(values):5.1f} ± {100 * np.std(values):4.1f}")

    if args.labels <= 0:
        return
    print(f"\ndigits 0-4 source -> digits 5-9, {args.labels} labels/class, fine-tuned; test accuracy %")
    for strength in (None, 1e-3, 1e-2):
        values = [l2_sp_fine_tuning(args.labels, seed, args.epochs, strength) for seed in range(args.seeds)]
        label = "no L2-SP" if strength is None else f"L2-SP {strength:g}"
        print(f"  {label:20} {100 * np.mean(values):5.1f} ± {100 * np.std(values):4.1f}")


if __name__ == "__main__":
    main()
