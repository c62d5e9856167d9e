"""Semi-supervised transfer: few labels, the rest of the training data unlabelled.

Each row is the mean ± std over seeds (the seed picks the labelled examples
and the validation split), with its plain baselines from the same run and
the same examples:

- 20 Newsgroups (bydate training split from ../shared/data; the CLI's own
  stratified test split of 2,263 posts; headers, footers and quotes removed,
  or kept): `tfxfer fit text` with its defaults (`--labels-per-class N`, the
  rest unlabelled: the hybrid encoder, self-training), beside TF-IDF (1-2
  grams, sublinear) + LinearSVC on the labels, and the same TF-IDF +
  LinearSVC self-trained the same way (class-balanced curriculum, 5 rounds,
  pseudo-labels at weight 0.5, stop at the first round whose validation
  accuracy falls below the best by more than 1/sqrt(validation examples)),
  so that the gain is not only the classifier's;
- CIFAR-10 20k (16,000 train / 4,000 test, the CLI's split), MobileNetV2
  ImageNet at 96 px (`--weights`), `--rows cifar10-fit`: `tfxfer fit image
  --labels-per-class N` with its defaults (the whole network fine-tuned
  on the labelled images, then the head self-trained on the fine-tuned
  source's features of the rest), beside the same command with `--unlabelled none
  --epochs 0` (the supervised linear probe, on the same examples) and with
  `--unlabelled none` (supervised fine-tuning);
- the same, `--rows cifar10`, on cached features only: `tfxfer.self_train`
  with its defaults beside the supervised linear probe (`fit_head`, its
  default solver) and scikit-learn LogisticRegression on the same features.

    python benchmarks/semi_supervised.py [--rows 20news,cifar10-fit,cifar10] [--seeds 0,1,2]
        [--text-budgets 10,50,0] [--image-budgets 10,25,100] [--headers removed,kept]

A budget of 0 means all labels (nothing left unlabelled).
"""

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from defaults import CIFAR, NEWS, WEIGHTS, logistic_on_features, run_cli  # noqa: E402


def _mean_std(values):
    return f"{np.mean(values):.1f} ± {np.std(values):.1f}"


def tfidf_svc_self_trained(x_train, y_train, x_unlabelled, x_test, y_test, seed, rounds=5, weight=0.5):
    """TF-IDF + LinearSVC, and the same self-trained as `tfxfer.self_train`
    does: returns (supervised %, self-trained %)."""
    import scipy.sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    from tfxfer.data import stratified_split
    from tfxfer.transfer import confident_picks, noise_margin

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    vectorizer.fit(list(x_train) + list(x_unlabelled))
    (fit_x, fit_y), (val_x, val_y) = stratified_split(np.asarray(x_train, dtype=object), y_train, 0.2, seed)
    features, val_features = vectorizer.transform(list(fit_x)), vectorizer.transform(list(val_x))
    test = vectorizer.transform(list(x_test))

    def probabilities(svm, x):
        scores = svm.decision_function(x)
        scores = np.exp(scores - scores.max(1, keepdims=True))
        return scores / scores.sum(1, keepdims=True)

    supervised = 100 * LinearSVC().fit(vectorizer.transform(list(x_train)), y_train).score(test, y_test)
    if not len(x_unlabelled):
        return supervised, supervised  # all labels: nothing to self-train on
    pool = vectorizer.transform(list(x_unlabelled))
    best_svm = svm = LinearSVC().fit(features, fit_y)
    best = svm.score(val_features, val_y)
    num_classes = len(np.unique(y_train))
    for round_ in range(1, rounds + 1):
        picked = confident_picks(
            probabilities(svm, pool), math.ceil(round_ / rounds * pool.shape[0] / num_classes), 0.0
        )
        labels = svm.predict(pool[picked])
        weights = np.concatenate([np.ones(len(fit_y)), np.full(len(picked), weight)])
        svm = LinearSVC().fit(
            scipy.sparse.vstack([features, pool[picked]]), np.concatenate([fit_y, labels]), sample_weight=weights
        )
        accuracy = svm.score(val_features, val_y)
        if accuracy < best - noise_margin(len(val_y)):
            break
        best, best_svm = max(best, accuracy), svm
    return supervised, 100 * best_svm.score(test, y_test)


def text_rows(budgets, seeds, header_settings):
    import tfxfer

    for headers in header_settings:
        remove = "headers,footers,quotes" if headers == "removed" else "footers,quotes"
        by_seed = {seed: tfxfer.data.load_text_data(NEWS, remove=tuple(remove.split(",")), seed=seed) for seed in seeds}
        for per_class in budgets:
            ours, plain, self_trained, minutes = [], [], [], []
            for seed, data in by_seed.items():  # the CLI's test split depends on --seed too
                limited = data.limited(per_class or None, seed)
                budget = ["--labels-per-class", str(per_class)] if per_class else []
                accuracy, seconds = run_cli(
                    "text", "--source", "embedded", "--data", NEWS, "--remove", remove, "--seed", str(seed), *budget
                )
                ours.append(accuracy)
                minutes.append(seconds / 60)
                unlabelled = limited.x_unlabelled if limited.x_unlabelled is not None else np.array([], dtype=object)
                supervised, trained = tfidf_svc_self_trained(
                    limited.x_train, limited.y_train, unlabelled, data.x_test, data.y_test, seed
                )
                plain.append(supervised)
                self_trained.append(trained)
            yield (
                f"20 Newsgroups, headers {headers}",
                per_class,
                f"`tfxfer fit text` defaults: {_mean_std(ours)} ({np.mean(minutes):.1f} min)",
                f"TF-IDF + LinearSVC {_mean_std(plain)}; self-trained {_mean_std(self_trained)}",
            )


def image_cli_rows(budgets, seeds):
    for per_class in budgets:
        ours, minutes, probe, supervised, supervised_minutes = [], [], [], [], []
        for seed in seeds:
            command = ["image", "--source", "mobilenet_v2/imagenet", "--weights", WEIGHTS, "--data", CIFAR]
            command += ["--labels-per-class", str(per_class), "--seed", str(seed)]
            accuracy, seconds = run_cli(*command)
            ours.append(accuracy)
            minutes.append(seconds / 60)
            probe.append(run_cli(*command, "--unlabelled", "none", "--epochs", "0")[0])
            accuracy, seconds = run_cli(*command, "--unlabelled", "none")
            supervised.append(accuracy)
            supervised_minutes.append(seconds / 60)
            print(f"seed {seed}: {ours[-1]:.1f} / {probe[-1]:.1f} / {supervised[-1]:.1f}", file=sys.stderr, flush=True)
        yield (
            "CIFAR-10 20k, `tfxfer fit image`",
            per_class,
            f"defaults (fine-tuning, then self-training): {_mean_std(ours)} ({np.mean(minutes):.1f} min)",
            f"supervised probe (`--unlabelled none --epochs 0`) {_mean_std(probe)}; "
            f"supervised fine-tuning (`--unlabelled none`) {_mean_std(supervised)} "
            f"({np.mean(supervised_minutes):.1f} min)",
        )


def image_rows(budgets, seeds):
    import keras

    import tfxfer
    from tfxfer.data import stratified_split
    from tfxfer.transfer import extract_features, fit_head

    data = tfxfer.data.load_image_data(CIFAR)
    backbone = tfxfer.ImageBackbone("mobilenet_v2", weights=WEIGHTS, input_size=96)
    train_features = np.asarray(extract_features(backbone, data.x_train)[0])
    test_features = np.asarray(extract_features(backbone, data.x_test)[0])
    features = keras.Input(train_features.shape[1:], name="features")
    identity = keras.Model(features, keras.layers.Identity()(features), name="mobilenet_v2_features")

    def model():  # the CLI's image head on the cached MobileNetV2 features
        return tfxfer.ImageClassifier(identity, len(data.class_names), input_shape=train_features.shape[1:])

    def accuracy(classifier):
        return 100 * float(np.mean(classifier.predict(test_features, verbose=0).argmax(1) == data.y_test))

    for per_class in budgets:
        probe, self_trained, logistic = [], [], []
        for seed in seeds:
            labelled = _per_class(data.y_train, per_class, seed)
            rest = np.setdiff1d(np.arange(len(data.y_train)), labelled)
            x, y = train_features[labelled], data.y_train[labelled]
            (fit_x, fit_y), validation = stratified_split(x, y, 0.2, seed)
            supervised = model()
            fit_head(supervised, fit_x, fit_y, validation_data=validation, solver="auto", progress=False, verbose=0)
            probe.append(accuracy(supervised))
            semi = model()
            tfxfer.self_train(
                semi, fit_x, fit_y, train_features[rest], validation, seed=seed, progress=False, verbose=0
            )
            self_trained.append(accuracy(semi))
            logistic.append(logistic_on_features(x, y, test_features, data.y_test))
        yield (
            "CIFAR-10 20k, MobileNetV2 features",
            per_class,
            f"`tfxfer.self_train` defaults: {_mean_std(self_trained)}",
            f"linear probe (fit_head) {_mean_std(probe)}; LogisticRegression {_mean_std(logistic)}",
        )


def _per_class(labels, per_class, seed):
    rng = np.random.default_rng(seed)
    return np.sort(
        np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)])
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="20news,cifar10-fit,cifar10")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--text-budgets", default="10,50,0")
    parser.add_argument("--image-budgets", default="10,25,100")
    parser.add_argument("--headers", default="removed,kept")
    args = parser.parse_args(argv)
    missing = [p for p in (CIFAR, WEIGHTS, NEWS) if not os.path.exists(p)]
    if missing:
        sys.exit(f"missing shared data (see ../shared/data/README.md): {missing}")
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"| data | labels/class | tfxfer (test %, mean ± std over seeds {seeds}) | baselines, same run |")
    print("| --- | --- | --- | --- |", flush=True)
    rows = []
    if "20news" in args.rows:
        budgets = [int(b) for b in args.text_budgets.split(",")]
        rows.append(text_rows(budgets, seeds, args.headers.split(",")))
    image_budgets = [int(b) for b in args.image_budgets.split(",")]
    if "cifar10-fit" in args.rows.split(","):
        rows.append(image_cli_rows(image_budgets, seeds))
    if "cifar10" in args.rows.split(","):
        rows.append(image_rows(image_budgets, seeds))
    for generator in rows:
        for data, per_class, ours, baselines in generator:
            print(f"| {data} | {per_class or 'all'} | {ours} | {baselines} |", flush=True)


if __name__ == "__main__":
    main()
