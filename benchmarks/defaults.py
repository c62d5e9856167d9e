"""What a user gets from `tfxfer fit` with its defaults, beside the plain baseline.

Each row runs the CLI as a user would, with no tuning option (only the
source, the data, the label budget and a run folder), and prints its test
accuracy and wall-clock time; beside it, in the same run and on the same
examples, the baseline a user would otherwise pick:

- images: CIFAR-10 20k from ../shared/data (16,000 train / 4,000 test, the
  CLI's own stratified split), MobileNetV2 with the shared ImageNet weights
  (`--weights`); baseline: scikit-learn LogisticRegression on the same
  frozen MobileNetV2 features (standardised, C picked on a held-out tenth);
- text: the 20 Newsgroups bydate training split from ../shared/data (9,051
  train / 2,263 test, the CLI's stratified split), headers, footers and
  quotes removed, the shipped word vectors; baseline: TF-IDF (1-2 grams,
  sublinear) + LinearSVC.

    python benchmarks/defaults.py [--rows cifar10,20news] [--image-budgets 0,100,10] [--text-budgets 10,50,0]

A budget of 0 means all labels.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
CIFAR = os.path.join(SHARED, "cifar10", "cifar10-train-20k.npz")
WEIGHTS = os.path.join(SHARED, "weights", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")
NEWS = os.path.join(SHARED, "20news", "20news-bydate-train.tar.gz")


def run_cli(*arguments):
    """`tfxfer fit ...` in a fresh process: (test accuracy %, seconds)."""
    run_dir = tempfile.mkdtemp(prefix="tfxfer-defaults-")
    command = [sys.executable, "-m", "tfxfer.cli", "fit", *arguments, "--run-dir", run_dir, "--quiet"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    seconds = time.perf_counter() - started
    found = re.search(r"test accuracy ([\d.]+)%", result.stdout)
    if result.returncode or not found:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    return float(found.group(1)), seconds


def _budget_data(data, per_class, seed=0):
    return data.limited(per_class or None, seed)


def logistic_on_features(x_train, y_train, x_test, y_test):
    """LogisticRegression on standardised features, C picked on a stratified tenth."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model(c):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))

    fit_x, val_x, fit_y, val_y = train_test_split(x_train, y_train, test_size=0.1, random_state=0, stratify=y_train)
    best = max((0.001, 0.01, 0.1, 1.0), key=lambda c: model(c).fit(fit_x, fit_y).score(val_x, val_y))
    return 100 * model(best).fit(x_train, y_train).score(x_test, y_test)


def tfidf_svc(x_train, y_train, x_test, y_test):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LinearSVC())
    return 100 * model.fit(list(x_train), y_train).score(list(x_test), y_test)


def image_rows(budgets):
    import tfxfer
    from tfxfer.transfer import extract_features

    data = tfxfer.data.load_image_data(CIFAR)
    backbone = tfxfer.ImageBackbone("mobilenet_v2", weights=WEIGHTS, input_size=96)

    def features(images):
        return np.asarray(extract_features(backbone, images, progress=False)[0])

    test_features = features(data.x_test)
    for per_class in budgets:
        limited = _budget_data(data, per_class)
        budget = ["--labels-per-class", str(per_class)] if per_class else []
        accuracy, seconds = run_cli(
            "image", "--source", "mobilenet_v2/imagenet", "--weights", WEIGHTS, "--data", CIFAR, *budget
        )
        baseline = logistic_on_features(features(limited.x_train), limited.y_train, test_features, data.y_test)
        yield "CIFAR-10 20k", per_class, accuracy, seconds, "LogisticRegression on features", baseline


def text_rows(budgets):
    import tfxfer

    data = tfxfer.data.load_text_data(NEWS)
    for per_class in budgets:
        limited = _budget_data(data, per_class)
        accuracy, seconds = run_cli(
            "text",
            "--source",
            "embedded",
            "--data",
            NEWS,
            *(["--labels-per-class", str(per_class)] if per_class else []),
        )
        baseline = tfidf_svc(limited.x_train, limited.y_train, data.x_test, data.y_test)
        yield (
            "20 Newsgroups, headers/footers/quotes removed",
            per_class,
            accuracy,
            seconds,
            "TF-IDF + LinearSVC",
            baseline,
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="cifar10,20news")
    parser.add_argument("--image-budgets", default="0,100,10")
    parser.add_argument("--text-budgets", default="10,50,0")
    args = parser.parse_args(argv)
    missing = [p for p in (CIFAR, WEIGHTS, NEWS) if not os.path.exists(p)]
    if missing:
        sys.exit(f"missing shared data (see ../shared/data/README.md): {missing}")
    print("| data | labels/class | tfxfer fit, defaults | minutes | baseline | baseline accuracy |")
    print("| --- | --- | --- | --- | --- | --- |", flush=True)
    rows = []
    if "cifar10" in args.rows:
        rows.append(image_rows([int(b) for b in args.image_budgets.split(",")]))
    if "20news" in args.rows:
        rows.append(text_rows([int(b) for b in args.text_budgets.split(",")]))
    for generator in rows:
        for data, per_class, accuracy, seconds, baseline_name, baseline in generator:
            print(
                f"| {data} | {per_class or 'all'} | {accuracy:.1f} | {seconds / 60:.1f} | {baseline_name} | "
                f"{baseline:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
