"""The main job: transfer the embedded sources to new tasks with few labels.

Images: the embedded source learned digits 0-4 (`tfxfer.sources.embedded`).
Here it is reused, through `HubFeatures`, to recognise digits 5-9 from 5 or
10 labelled images per class, and compared with training the same
architecture from scratch. Every strategy sees the same labelled images per
seed; the rest of digits 5-9 is the test set. Self-training also sees the
test images, without their labels, as its unlabelled pool (transductive, as
a user labels a few of their images and self-trains on all of them).

Text: the embedded word vectors (`tfxfer.sources.embedded_vectors`, trained
on Wikipedia and news text) are reused to tell alt.atheism from sci.space
posts (gensim's `mini_newsgroup` sample, headers, footers and quotes
removed) from 5 or 10 labelled posts per class, against the same
classifier with its embedding learned from scratch. The transferred model's
vocabulary comes from all the sample's texts (unlabelled text is cheap; no
label is used), the scratch model's from its labelled posts. Self-training
runs `tfxfer.self_train` with the hybrid encoder (TF-IDF beside the
vectors), the unlabelled pool being the test posts, labels unseen.
"""

import os

import numpy as np
import tqdm

from tfxfer.data.datasets import digit_images
from tfxfer.data.splits import few_label_split
from tfxfer.sources.embedded import embedded_source_path, feature_extractor

TARGET_CLASSES = (5, 6, 7, 8, 9)
STRATEGIES = ("from scratch", "feature extraction", "fine-tuning", "self-training")
TEXT_STRATEGIES = ("from scratch", "transferred vectors", "vectors fine-tuned", "self-training")


def _classifier(body, num_classes):
    import keras

    return keras.Sequential([body, keras.layers.Dense(num_classes)])


def _fit(model, x, y, learning_rate, epochs, batch_size=8):
    import keras

    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)


def score_strategies(source, train, test, seed, epochs):
    """Test accuracy of each strategy trained on the labelled `train` pair.

    Feature extraction is the head warm-up of fine-tuning, so fine-tuning
    continues from it: the source unfrozen, the whole model trained at a
    tenth of the rate. From scratch, the source's architecture trains for as
    many epochs as the two stages together.
    """
    import keras

    from tfxfer.sources.hub import HubFeatures
    from tfxfer.tasks.image_classifier import ImageClassifier
    from tfxfer.transfer.self_training import self_train

    (x_train, y_train), (x_test, y_test) = train, test
    num_classes = len(TARGET_CLASSES)
    scores = {}

    def score(model):
        return float(model.evaluate(x_test, y_test, verbose=0)[1])

    keras.utils.set_random_seed(seed)
    scratch = _classifier(feature_extractor(), num_classes)
    _fit(scratch, x_train, y_train, 3e-3, 2 * epochs)
    scores["from scratch"] = score(scratch)

    keras.utils.set_random_seed(seed)
    features = HubFeatures(source, trainable=False)
    transfer = _classifier(features, num_classes)
    _fit(transfer, x_train, y_train, 1e-2, epochs)
    scores["feature extraction"] = score(transfer)
    features.trainable = True
    _fit(transfer, x_train, y_train, 1e-3, epochs)
    scores["fine-tuning"] = score(transfer)

    keras.utils.set_random_seed(seed)
    self_trained = ImageClassifier.from_preset("embedded", num_classes)
    self_train(self_trained, x_train, y_train, x_test, progress=False, verbose=0, seed=seed)
    scores["self-training"] = score(self_trained)
    return scores


def run(budgets=(5, 10), seeds=(0, 1, 2, 3, 4), epochs=30, progress=True):
    """Accuracy of each strategy, per label budget, over seeds.

    Returns:
        dict `{(strategy, per_class): [accuracy per seed]}`.
    """
    source = embedded_source_path()
    images, labels = digit_images(TARGET_CLASSES)
    labels = labels - TARGET_CLASSES[0]
    runs = [(b, s) for b in budgets for s in seeds]
    results = {}
    for per_class, seed in tqdm.tqdm(runs, desc="demo", disable=not progress, unit="run"):
        train, test = few_label_split(labels, per_class, seed)
        scores = score_strategies(source, (images[train], labels[train]), (images[test], labels[test]), seed, epochs)
        for strategy, accuracy in scores.items():
            results.setdefault((strategy, per_class), []).append(accuracy)
    return results


def score_text_strategies(vectors, pool, train, test, seed, epochs):
    """Test accuracy of each text strategy trained on the labelled `train` pair.

    The head on transferred vectors trains for `epochs`, then the vectors are
    fine-tuned at a tenth of the rate for a third as many; from scratch, the
    same classifier trains for as many epochs as the two stages together.
    """
    import keras

    from tfxfer.tasks.text_classifier import TextClassifier
    from tfxfer.transfer import fine_tune
    from tfxfer.transfer.self_training import self_train

    (x_train, y_train), (x_test, y_test) = train, test
    scores = {}

    def fit(model, rate, stage_epochs):
        model.compile(optimizer=keras.optimizers.Adam(rate))
        model.fit(x_train, y_train, epochs=stage_epochs, batch_size=8, verbose=0)

    def score(model):
        return float(model.evaluate(x_test, y_test, verbose=0)[1])

    scratch = TextClassifier.from_word_vectors(None, x_train, 2, dim=vectors.dim, seed=seed)
    fit(scratch, 1e-2, epochs + epochs // 3)
    scores["from scratch"] = score(scratch)

    keras.utils.set_random_seed(seed)
    transfer = TextClassifier.from_word_vectors(vectors, pool, 2, seed=seed)
    fit(transfer, 1e-2, epochs)
    scores["transferred vectors"] = score(transfer)
    fine_tune(
        transfer,
        x_train,
        y_train,
        epochs=epochs // 3,
        warmup_epochs=0,
        unfreeze=1,
        learning_rate=1e-2,
        source_rate=0.1,
        batch_size=8,
        verbose=0,
    )
    scores["vectors fine-tuned"] = score(transfer)

    self_trained = TextClassifier.from_word_vectors(vectors, pool, 2, seed=seed, encoder="hybrid")
    self_train(self_trained, x_train, y_train, x_test, progress=False, verbose=0, seed=seed)
    scores["self-training"] = score(self_trained)
    return scores


def run_text(budgets=(5, 10), seeds=(0, 1, 2, 3, 4), epochs=90, progress=True):
    """Like `run`, for the text transfer: `{(strategy, per_class): [accuracy]}`."""
    from tfxfer.data.newsgroups import load_mini_newsgroup, strip_posts
    from tfxfer.data.texts import as_text_array
    from tfxfer.sources.embedded_vectors import embedded_vectors_path
    from tfxfer.sources.word_vectors import WordVectors

    sample = load_mini_newsgroup()
    texts = as_text_array(strip_posts(sample.data, ("headers", "footers", "quotes")))
    labels = np.asarray(sample.target)
    vectors = WordVectors.load(embedded_vectors_path())
    runs = [(b, s) for b in budgets for s in seeds]
    results = {}
    for per_class, seed in tqdm.tqdm(runs, desc="text demo", disable=not progress, unit="run"):
        train, test = few_label_split(labels, per_class, seed)
        scores = score_text_strategies(
            vectors, texts, (texts[train], labels[train]), (texts[test], labels[test]), seed, epochs
        )
        for strategy, accuracy in scores.items():
            results.setdefault((strategy, per_class), []).append(accuracy)
    return results


IMAGE_TITLE = "Digits 5-9 from few labels, source: digits 0-4 (embedded)"
TEXT_TITLE = "alt.atheism vs sci.space from few labels, source: word2vec on Wikipedia + news (embedded)"


def format_table(results, strategies=STRATEGIES, title=IMAGE_TITLE):
    """A text table: one row per strategy, one column per label budget."""
    budgets = sorted({b for _, b in results})
    strategies = [s for s in strategies if any(k[0] == s for k in results)]
    seeds = len(next(iter(results.values())))
    header = ["strategy"] + [f"{b} labels/class" for b in budgets]
    rows = [header]
    for strategy in strategies:
        cells = [strategy]
        for b in budgets:
            scores = 100 * np.asarray(results[(strategy, b)])
            cells.append(f"{scores.mean():5.1f} ± {scores.std():4.1f}")
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([f"{title}, test accuracy %, mean ± std over {seeds} seeds", *lines])


# Feature extraction here is a dense layer on the frozen source: a linear probe.
_PLOT_NAMES = {"feature extraction": "feature extraction (linear probe)"}


def main(budgets=(5, 10), seeds=5, epochs=30, text_epochs=90, plots_dir=None):
    """Runs both transfers, prints their tables and, with `plots_dir`, writes
    `digits_budgets.png` and `text_budgets.png` there."""
    print(__doc__.splitlines()[0])
    results = run(budgets=budgets, seeds=tuple(range(seeds)), epochs=epochs)
    text_results = run_text(budgets=budgets, seeds=tuple(range(seeds)), epochs=text_epochs)
    print(format_table(results))
    print()
    print(format_table(text_results, TEXT_STRATEGIES, TEXT_TITLE))
    if plots_dir:
        from tfxfer import plots

        written = [
            plots.label_budgets(
                {(_PLOT_NAMES.get(s, s), b): v for (s, b), v in results.items()},
                os.path.join(plots_dir, "digits_budgets.png"),
                IMAGE_TITLE,
            ),
            plots.label_budgets(text_results, os.path.join(plots_dir, "text_budgets.png"), TEXT_TITLE),
        ]
        print("\nplots: " + ", ".join(written))
    return results, text_results
