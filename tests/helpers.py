"""Small real models and data the tests share (imported by the tests; the
fixtures that use them live in conftest.py)."""

import contextlib
import json
import signal

import keras
import numpy as np
from safetensors.numpy import save_file

IMAGE_SHAPE = (8, 8, 1)

# `tfxfer fit text` on the offline sample, with no tuning option.
FIT_TEXT_DEFAULTS = ("fit", "text", "--source", "embedded", "--data", "mini_newsgroup")


def small_bn_model(seed=0, named=False):
    """Conv + BatchNorm + pooling: a source with trainable and moving weights.
    `named`: its layers called `conv2d` and `batch_normalization` whatever
    this process built before (Keras numbers default names per process)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(IMAGE_SHAPE)
    x = keras.layers.Conv2D(4, 3, name="conv2d" if named else None)(inputs)
    x = keras.layers.BatchNormalization(name="batch_normalization" if named else None)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x)


@contextlib.contextmanager
def time_limit(seconds):
    """Fails the block with TimeoutError after `seconds` (a hang becomes a failure)."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


TICKET_WORDS = {
    "billing": "refund invoice charge payment card money bill price paid".split(),
    "bug": "crash error freeze broken bug fails exception screen".split(),
    "account": "password login account email username reset sign profile".split(),
}


def ticket_rows(count, seed=0):
    """`(text, label)` rows of a generated three-class support-ticket task."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label = sorted(TICKET_WORDS)[i % 3]
        words = rng.choices(TICKET_WORDS[label], k=5) + rng.choices("the a my is not it please help".split(), k=4)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def write_tickets(path, rows, form=None, label="label"):
    """`rows` written as `form` (by `path`'s suffix: .csv, .tsv, .jsonl), or as a
    folder of class folders of text files (`form="folder"`)."""
    import csv
    import pathlib

    path = pathlib.Path(path)
    form = form or path.suffix
    if form == "folder":
        for i, (text, name) in enumerate(rows):
            (path / name).mkdir(parents=True, exist_ok=True)
            (path / name / f"ticket {i}.txt").write_text(text)
    elif form == ".jsonl":
        path.write_text("".join(json.dumps({"text": text, label: name}) + "\n" for text, name in rows))
    else:
        with open(path, "w", newline="") as file:
            writer = csv.writer(file, delimiter="\t" if form == ".tsv" else ",")
            writer.writerow(["text", label])
            writer.writerows(rows)
    return path


def write_digit_pngs(folder, per_class=12, classes=(5, 6, 7), labels=None, offset=0):
    """scikit-learn digits of `classes` as PNG files under `folder/images/`,
    and `folder/digits.csv` naming them (relative paths) with their label
    (`labels(digit)`: a cell; by default the digit). Returns the CSV's path."""
    import csv
    import pathlib

    from PIL import Image
    from sklearn.datasets import load_digits

    folder = pathlib.Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    rows = []
    for digit in classes:
        for i in np.flatnonzero(digits.target == digit)[offset : offset + per_class]:
            name = f"images/{digit}_{i}.png"
            Image.fromarray((digits.images[i] * 255 / 16).astype("uint8")).save(folder / name)
            rows.append((name, labels(digit) if labels else str(digit)))
    path = folder / "digits.csv"
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return path


# A tiny random BERT as a Hugging Face / sentence-transformers folder.
HIDDEN, INTERMEDIATE, POSITIONS = 8, 16, 64
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "rocket", "orbit", "god", "faith", "a", "launch", "in"]
TEXTS = np.array(["the rocket reached orbit", "faith in god", "a launch", "the the the god"], dtype=object)


def _bert_weights(rng):
    def dense(name, rows, cols):
        return {f"{name}.weight": rng.normal(0, 0.2, (rows, cols)), f"{name}.bias": rng.normal(0, 0.1, rows)}

    def norm(name):
        return {f"{name}.weight": 1 + rng.normal(0, 0.1, HIDDEN), f"{name}.bias": rng.normal(0, 0.1, HIDDEN)}

    layer = "encoder.layer.0"
    weights = {
        "embeddings.word_embeddings.weight": rng.normal(0, 1, (len(WORDS), HIDDEN)),
        "embeddings.position_embeddings.weight": rng.normal(0, 0.1, (POSITIONS, HIDDEN)),
        "embeddings.token_type_embeddings.weight": rng.normal(0, 0.1, (2, HIDDEN)),
        **norm("embeddings.LayerNorm"),
        **dense(f"{layer}.attention.self.query", HIDDEN, HIDDEN),
        **dense(f"{layer}.attention.self.key", HIDDEN, HIDDEN),
        **dense(f"{layer}.attention.self.value", HIDDEN, HIDDEN),
        **dense(f"{layer}.attention.output.dense", HIDDEN, HIDDEN),
        **norm(f"{layer}.attention.output.LayerNorm"),
        **dense(f"{layer}.intermediate.dense", INTERMEDIATE, HIDDEN),
        **dense(f"{layer}.output.dense", HIDDEN, INTERMEDIATE),
        **norm(f"{layer}.output.LayerNorm"),
        **dense("pooler.dense", HIDDEN, HIDDEN),
    }
    return {name: value.astype(np.float32) for name, value in weights.items()}


def write_bert_folder(folder, vocab_file=True, pooling="mean", normalize=True, max_seq_length=16, model_type="bert"):
    """A sentence-transformers folder (or, with `pooling=None`, a plain
    Hugging Face folder) of a one-layer random BERT, as `save_pretrained`
    and sentence-transformers write it."""
    folder.mkdir(parents=True)
    config = {
        "model_type": model_type,
        "vocab_size": len(WORDS),
        "hidden_size": HIDDEN,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": POSITIONS,
        "type_vocab_size": 2,
    }
    (folder / "config.json").write_text(json.dumps(config))
    save_file(_bert_weights(np.random.default_rng(0)), str(folder / "model.safetensors"))
    tokenizer = {"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {w: i for i, w in enumerate(WORDS)}}}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    if vocab_file:
        (folder / "vocab.txt").write_text("".join(f"{w}\n" for w in WORDS))
    if pooling:
        (folder / "1_Pooling").mkdir()
        modes = {
            "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean",
            "pooling_mode_max_tokens": pooling == "max",
        }
        (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": HIDDEN, **modes}))
        modules = [{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"}]
        modules.append({"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"})
        if normalize:
            modules.append({"idx": 2, "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (folder / "modules.json").write_text(json.dumps(modules))
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    return folder
