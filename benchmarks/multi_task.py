"""Multi-task transfer against one model per task, offline: scikit-learn's digits.

Target: digits 5-9 (the shipped `digits04_cnn` source learned 0-4). Per
seed, 40 % of the images are the test set; the rest is cut in two halves
that label different things:
  - task `digit` (which of 5-9): `--labels` images per class of half A;
  - task `parity` (odd or even): every image of half B.
Rows, each trained with the defaults (`tfxfer.fine_tune`: head warm-up, then
the whole source at lower rates), test accuracy per task, mean ± std:
  - one `MultiTaskClassifier` on both halves (missing labels masked);
  - two `ImageClassifier`s, each on its own task's examples only;
  - the plain baseline: LogisticRegression on the frozen source's features.

    python benchmarks/multi_task.py [--seeds 3] [--labels 5 10]
"""

import argparse
import time

import numpy as np

TASKS = ("digit", "parity")


def split(digits, per_class, seed):
    """`{task: labels}` over all images (-1 where a task has none), and the test indices."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits))
    test, train = order[: int(0.4 * len(order))], order[int(0.4 * len(order)) :]
    half_a, half_b = train[: len(train) // 2], train[len(train) // 2 :]
    digit = np.full(len(digits), -1)
    for value in range(5, 10):
        chosen = half_a[digits[half_a] == value][:per_class]
        digit[chosen] = value - 5
    parity = np.full(len(digits), -1)
    parity[half_b] = digits[half_b] % 2
    return {"digit": digit, "parity": parity}, test


def truth(digits):
    return {"digit": digits - 5, "parity": digits % 2}


def multi_task(images, labels, seed):
    import keras

    import tfxfer

    keras.utils.set_random_seed(seed)
    model = tfxfer.MultiTaskClassifier(tfxfer.HubFeatures(tfxfer.preset_path("embedded")), dict(digit=5, parity=2))
    labelled = np.flatnonzero(np.max([labels[task] for task in TASKS], axis=0) >= 0)
    tfxfer.fine_tune(model, images[labelled], {task: labels[task][labelled] for task in TASKS}, verbose=0)
    return lambda x: {task: p.argmax(-1) for task, p in model.predict(x, verbose=0).items()}


def single_task(images, labels, task, seed):
    import keras

    import tfxfer

    keras.utils.set_random_seed(seed)
    keep = labels[task] >= 0
    model = tfxfer.ImageClassifier(tfxfer.HubFeatures(tfxfer.preset_path("embedded")), 5 if task == "digit" else 2)
    tfxfer.fine_tune(model, images[keep], labels[task][keep], verbose=0)
    return lambda x: model.predict(x, verbose=0).argmax(-1)


def logistic_regression(images, labels, task, test_images):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import tfxfer

    source = tfxfer.HubFeatures(tfxfer.preset_path("embedded"), trainable=False)
    keep = labels[task] >= 0
    features = np.asarray(source(images[keep]))
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(features, labels[task][keep])
    return classifier.predict(np.asarray(source(test_images)))


def run(per_class, seeds):
    from tfxfer.data import digit_images

    images, digits = digit_images((5, 6, 7, 8, 9))
    rows = {}
    for seed in range(seeds):
        labels, test = split(digits, per_class, seed)
        want = truth(digits[test])
        start = time.perf_counter()
        predicted = multi_task(images, labels, seed)(images[test])
        for task in TASKS:
            rows.setdefault(("one multi-task model", task), []).append(np.mean(predicted[task] == want[task]))
        rows.setdefault(("one multi-task model", "seconds"), []).append(time.perf_counter() - start)
        start = time.perf_counter()
        for task in TASKS:
            predicted = single_task(images, labels, task, seed)(images[test])
            rows.setdefault(("two single-task models", task), []).append(np.mean(predicted == want[task]))
        rows.setdefault(("two single-task models", "seconds"), []).append(time.perf_counter() - start)
        for task in TASKS:
            predicted = logistic_regression(images, labels, task, images[test])
            rows.setdefault(("LogisticRegression on features", task), []).append(np.mean(predicted == want[task]))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--labels", type=int, nargs="+", default=[5, 10], help="digit labels per class (half A)")
    args = parser.parse_args()
    for per_class in args.labels:
        rows = run(per_class, args.seeds)
        print(f"\n{per_class} digit labels per class (half A), parity labels on all of half B; {args.seeds} seeds")
        print(f"{'model':34s} {'digit %':>14s} {'parity %':>14s} {'seconds':>9s}")
        for name in ("one multi-task model", "two single-task models", "LogisticRegression on features"):
            cells = [f"{100 * np.mean(rows[name, t]):6.1f} ± {100 * np.std(rows[name, t]):4.1f}" for t in TASKS]
            seconds = rows.get((name, "seconds"))
            print(f"{name:34s} {cells[0]:>14s} {cells[1]:>14s} {np.mean(seconds) if seconds else 0:9.1f}")


if __name__ == "__main__":
    main()
