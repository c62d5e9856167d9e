"""20 Newsgroups from few and many labels: tfxfer text transfer vs. TF-IDF + LinearSVC.

Reads the real training split from ../shared/data/20news, holds out a
stratified 20% for validation, and prints validation accuracy at 10, 50 and
all labels per class, with headers kept and with headers, footers and
quotes removed, for:
  (a) TF-IDF + LinearSVC (scikit-learn);
  (b) tfxfer, word2vec vectors trained by gensim on the unlabelled training
      text (all of it; no label is used);
  (c) tfxfer, the GloVe 6B 100-d sample in ../shared/data/vectors;
  (d) tfxfer, the same classifier with its embedding learned from scratch.
The tfxfer models are `TextClassifier.from_word_vectors(..., pooling="mean")`
trained with `fine_tune`: with vectors, a head warm-up at 3e-2 (mean-pooled
vectors are small, so a linear head needs a high rate), then the embedding
at a tenth of it; from scratch, everything at 3e-3 (higher rates overfit
the fresh embedding).

    python benchmarks/text_20news.py [--budgets 10 50 0] [--epochs 10]
"""

import argparse
import os
import sys
import time

import numpy as np

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
ARCHIVE = os.path.join(SHARED, "20news", "20news-bydate-train.tar.gz")
GLOVE = os.path.join(SHARED, "vectors", "glove.6B.100d.top2604.txt")
SETTINGS = {"headers kept": (), "headers removed": ("headers", "footers", "quotes")}


def budget_indices(labels, per_class, seed=0):
    """`per_class` training indices per class (0: all of them)."""
    if not per_class:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    return np.sort(
        np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in np.unique(labels)])
    )


def tfidf_svc(x_train, y_train, x_val, y_val):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    model = make_pipeline(TfidfVectorizer(sublinear_tf=True), LinearSVC())
    return model.fit(x_train, y_train).score(x_val, y_val)


def gensim_vectors(texts, dim=100, seed=0):
    """word2vec on the texts, tokenized as TextVectorization's default does."""
    import re

    from gensim.models import Word2Vec

    from tfxfer import WordVectors

    punctuation = re.compile(r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~']")
    sentences = [punctuation.sub("", text.lower()).split() for text in texts]
    model = Word2Vec(sentences, vector_size=dim, window=5, min_count=3, sg=1, epochs=5, seed=seed, workers=2)
    return WordVectors(model.wv)


def tfxfer_accuracy(vectors, pool, x_train, y_train, x_val, y_val, epochs, dim=100):
    """Validation accuracy of a mean-pooled TextClassifier trained with fine_tune."""
    import keras

    from tfxfer import TextClassifier, fine_tune

    keras.utils.set_random_seed(0)
    model = TextClassifier.from_word_vectors(
        vectors, pool if vectors else x_train, 20, dim=dim, max_tokens=30000, sequence_length=400, dropout=0.2
    )
    batch = 32
    steps = max(len(x_train) // batch, 1)
    stage_epochs = max(epochs, 300 // steps)  # few labels: enough steps to converge
    if vectors is None:
        fine_tune(
            model,
            x_train,
            y_train,
            epochs=stage_epochs,
            warmup_epochs=0,
            unfreeze="all",
            learning_rate=3e-3,
            source_rate=1.0,
            batch_size=batch,
            verbose=0,
        )
    else:
        fine_tune(
            model,
            x_train,
            y_train,
            epochs=stage_epochs,
            warmup_epochs=stage_epochs,
            unfreeze=1,
            learning_rate=3e-2,
            source_rate=0.1,
            batch_size=batch,
            verbose=0,
        )
    return model.evaluate(x_val, y_val, batch_size=256, verbose=0)[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 50, 0], help="labels per class; 0 = all")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    for path in (ARCHIVE, GLOVE):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: this benchmark reads the shared data (see ../shared/data/README.md)")

    from sklearn.model_selection import train_test_split

    from tfxfer import WordVectors
    from tfxfer.data import as_text_array, load_20newsgroups

    glove = WordVectors.load(GLOVE)
    rows = []
    for setting in args.settings:
        news = load_20newsgroups(ARCHIVE, "train", remove=SETTINGS[setting])
        texts, labels = as_text_array(news.data), np.asarray(news.target)
        x_pool, x_val, y_pool, y_val = train_test_split(texts, labels, test_size=0.2, stratify=labels, random_state=0)
        start = time.perf_counter()
        own = gensim_vectors(x_pool)
        print(
            f"[{setting}] {len(x_pool)} train / {len(x_val)} validation posts; gensim word2vec on the "
            f"unlabelled train text: {len(own)} words in {time.perf_counter() - start:.0f} s",
            flush=True,
        )
        for per_class in args.budgets:
            chosen = budget_indices(y_pool, per_class)
            x_train, y_train = x_pool[chosen], y_pool[chosen]
            row = {"setting": setting, "labels": per_class or "all"}
            row["tfidf+svc"] = tfidf_svc(list(x_train), y_train, list(x_val), y_val)
            for name, vectors in (("gensim w2v", own), ("glove sample", glove), ("scratch", None)):
                row[name] = tfxfer_accuracy(vectors, x_pool, x_train, y_train, x_val, y_val, args.epochs)
            rows.append(row)
            print(
                "  " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                flush=True,
            )

    columns = ["tfidf+svc", "gensim w2v", "glove sample", "scratch"]
    print("\nvalidation accuracy %")
    print(f"{'setting':16} {'labels/class':>12} " + " ".join(f"{c:>13}" for c in columns))
    for row in rows:
        print(f"{row['setting']:16} {str(row['labels']):>12} " + " ".join(f"{100 * row[c]:13.1f}" for c in columns))


if __name__ == "__main__":
    main()
