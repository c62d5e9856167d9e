"""Named predictions for raw inputs: what `tfxfer predict` reads and writes.

Inputs are image files, folders of images, tables (CSV, TSV, JSON Lines)
in the training format, text files of one text per line, or `-` for
standard input; each becomes `Examples`. Their rows name the input, the
predicted class, its probability and the top k, and the accuracy where the
inputs have labels.
"""

import csv
import json
import os
import sys

import numpy as np

from tfxfer.data.examples import Examples
from tfxfer.data.image_folder import IMAGE_EXTENSIONS, class_folders, image_files_under
from tfxfer.data.tables import TABLE_SUFFIXES, TEXT_LINES, object_array, read_table
from tfxfer.data.text_folder import read_text_folder, text_class_folders
from tfxfer.files import write_atomically

OUTPUT_SUFFIXES = (".csv", ".jsonl")
CHUNK = 1024  # inputs per predict call: the progress bar's step


def read_inputs(kind, inputs, read_table_options):
    """`Examples` of every input of `inputs` (labels kept only if all have
    them); images as their paths, to be decoded at the model's size."""
    parts = [_read_one(kind, item, read_table_options) for item in inputs]
    labelled = all(part.labels is not None for part in parts)
    names = [name for part in parts for name in _input_names(part)]
    values = object_array([value for part in parts for value in part.inputs])
    labels = [label for part in parts for label in part.labels] if labelled else None
    return Examples(values, labels, ", ".join(map(str, inputs)), names)


def _read_one(kind, item, options):
    if item == "-":
        if kind == "image":
            raise ValueError("'-' reads texts from standard input; an image model takes image files or folders.")
        texts = [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
        return Examples(texts, None, "stdin", [f"-:{i + 1}" for i in range(len(texts))])
    path = os.path.expanduser(item)
    lower = path.lower()
    if not os.path.exists(path):
        raise FileNotFoundError(f"No input '{path}': pass files, folders, a table (.csv, .tsv, .jsonl) or '-'.")
    if lower.endswith(TABLE_SUFFIXES):  # a row is named by its image, or by its line
        examples = read_table(path, kind, **options)
        examples.lines = list(examples.inputs) if kind == "image" else [f"{path}:{n}" for n in examples.lines]
        return examples
    if kind == "image":
        return _images(path)
    if lower.endswith(TEXT_LINES):
        examples = read_table(path, kind, encoding=options.get("encoding", "utf-8"))
        examples.lines = [f"{path}:{line}" for line in examples.lines]
        return examples
    if os.path.isdir(path) and text_class_folders(path):
        examples = read_text_folder(path, options.get("encoding", "utf-8"))
        examples.lines = [os.path.join(path, line.removeprefix("file '").removesuffix("'")) for line in examples.lines]
        return examples
    raise ValueError(
        f"'{path}' is no input a text model reads: pass a .txt file (one text per line), a table "
        "(.csv, .tsv, .jsonl), a folder of class folders of text files, or '-' for standard input."
    )


def _images(path):
    """The images at `path`: a file, a folder of class folders (labelled by
    them, as `fit` reads it), or every image under a folder (unlabelled)."""
    classes = class_folders(path) if os.path.isdir(path) else []
    if classes and not any(name.lower().endswith(IMAGE_EXTENSIONS) for name in os.listdir(path)):
        files = [(f, name) for name in classes for f in image_files_under(os.path.join(path, name))]
        return Examples([f for f, _ in files], [name for _, name in files], path, [f for f, _ in files])
    if os.path.isdir(path):
        files = image_files_under(path)
        if not files:
            raise FileNotFoundError(f"No images under '{path}' ({', '.join(IMAGE_EXTENSIONS)} files).")
    elif path.lower().endswith(IMAGE_EXTENSIONS):
        files = [path]
    else:
        raise ValueError(
            f"'{path}' is no input an image model reads: pass image files ({', '.join(IMAGE_EXTENSIONS)}), "
            "folders of them, or a table (.csv, .tsv, .jsonl) of image paths."
        )
    return Examples(files, None, path, list(files))


def _input_names(examples):
    return examples.lines if examples.lines is not None else [str(x) for x in examples.inputs]


def predict_examples(model, examples, top_k=1, batch_size=64, progress=True):
    """`(rows, accuracy)`: a dict per input (`input`, `label`,
    `probability`, `top_k`, and `true_label` where known), and the accuracy
    (subset accuracy for multi-label) where every input has a label, else None."""
    from tqdm.auto import tqdm

    chunks = range(0, len(examples), CHUNK)
    bar = tqdm(chunks, desc="predict", unit_scale=CHUNK, disable=not progress or len(chunks) < 2, file=sys.stderr)
    probabilities = np.concatenate(
        [model.probabilities(examples.inputs[start : start + CHUNK], batch_size) for start in bar]
    )
    rows = model.class_labels.rows(probabilities, top_k)
    for row, name in zip(rows, _input_names(examples)):
        row["input"] = name
    if examples.labels is None:
        return rows, None
    y, _ = examples.encoded(model.class_names, multi_label=model.multi_label)
    predicted = model.class_labels.predicted(probabilities)
    right = np.all(predicted == y, axis=-1) if model.multi_label else predicted == y
    for row, label in zip(rows, examples.labels):
        row["true_label"] = "|".join(label) if isinstance(label, tuple) else label
    return rows, float(np.mean(right))


def check_output(path):
    """Refuses, before any work, an output file of another format."""
    if path is not None and not path.lower().endswith(OUTPUT_SUFFIXES):
        raise ValueError(f"--output '{path}': name a .csv or .jsonl file.")


def write_predictions(rows, path=None):
    """`rows` as CSV (`path` ending .csv, or standard output) or JSON Lines (.jsonl)."""
    check_output(path)
    if path is not None and path.lower().endswith(".jsonl"):

        def write(target):
            with open(target, "w", encoding="utf-8") as file:
                for row in rows:
                    file.write(json.dumps({"input": row.pop("input"), **row}, ensure_ascii=False) + "\n")

        return write_atomically(path, write)
    if path is None:
        _write_csv(rows, sys.stdout)
        return None

    def write_csv(target):
        with open(target, "w", newline="", encoding="utf-8") as file:
            _write_csv(rows, file)

    return write_atomically(path, write_csv)


def _write_csv(rows, file):
    columns = ["input", "label", "probability", "top_k"]
    columns += [c for c in ("labels", "true_label") if rows and c in rows[0]]
    writer = csv.DictWriter(file, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        top = "|".join(f"{name}:{p:.4f}" for name, p in row["top_k"])
        labels = {"labels": "|".join(row["labels"])} if "labels" in row else {}
        writer.writerow({**row, "top_k": top, **labels})
