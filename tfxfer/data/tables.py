"""Labelled examples from tables: CSV, TSV, JSON Lines, a text file of one
example per line, a pandas DataFrame, or lists.

Files are read row by row with Python's `csv` and `json` modules, keeping
only the two columns used: a 1 GB CSV takes about its own size in memory,
not the several copies a parsed table would hold, and each error names the
file and the line (`csv` knows it, a table parser does not). A pandas
DataFrame is taken as it is, without importing pandas.

Columns: `input_column` (by default the first of `TEXT_COLUMNS` or
`IMAGE_COLUMNS` the file has) and `label_column` (the first of
`LABEL_COLUMNS`); a file without a label column is unlabelled data.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "tickets.csv")
>>> _ = open(path, "w").write("text,label\\nrefund please,billing\\n\\"app, crashes\\",bug\\n")
>>> examples = read_table(path, "text")
>>> list(examples.inputs), examples.labels, examples.lines
(['refund please', 'app, crashes'], ['billing', 'bug'], [2, 3])
"""

import contextlib
import csv
import json
import os
import sys

import numpy as np

from tfxfer.data.examples import Examples, split_label
from tfxfer.data.limits import check_regular_file

TEXT_COLUMNS = ("text", "texts", "sentence", "review", "content", "body", "document", "message", "comment")
IMAGE_COLUMNS = ("path", "image", "image_path", "file", "filename", "filepath")
LABEL_COLUMNS = ("label", "labels", "class", "category", "target", "tags", "y")
DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
JSON_LINES = (".jsonl", ".ndjson")
TEXT_LINES = (".txt",)
TABLE_SUFFIXES = (*DELIMITERS, *JSON_LINES)


def is_table(data):
    """Whether `data` is read by `read_table`: a path to a table file, a
    DataFrame, or `(inputs, labels)` lists."""
    if _is_frame(data) or isinstance(data, tuple | list):
        return True
    return isinstance(data, str | os.PathLike) and os.fspath(data).lower().endswith((*TABLE_SUFFIXES, *TEXT_LINES))


def read_table(data, kind, input_column=None, label_column=None, encoding="utf-8", multi_label=False):
    """`Examples` of `data`: a CSV/TSV/JSON Lines/text file, a DataFrame,
    or `(inputs, labels)` lists. `kind`: `"text"` or `"image"` (a column of
    image paths, relative to the file's folder)."""
    if _is_frame(data):
        return _from_frame(data, kind, input_column, label_column, multi_label)
    if isinstance(data, tuple | list):
        return _from_lists(data, multi_label)
    path = os.path.expanduser(os.fspath(data))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No file '{path}': pass an existing CSV, TSV, JSON Lines or text file.")
    check_regular_file(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix in TEXT_LINES:
        return _from_text_lines(path, encoding)
    rows = _json_rows(path, encoding) if suffix in JSON_LINES else _csv_rows(path, encoding, DELIMITERS[suffix])
    examples = _columns(rows, path, kind, input_column, label_column, multi_label)
    if kind == "image":
        examples.inputs = _image_paths(examples, os.path.dirname(os.path.abspath(path)))
    return examples


def _is_frame(data):
    return hasattr(data, "columns") and hasattr(data, "iloc")


def _columns(rows, origin, kind, input_column, label_column, multi_label):
    """The input and label cells of `rows` (`(line, {column: cell})` after a
    header `(None, columns)`), checked."""
    _, columns = next(rows, (None, None))
    if not columns:
        raise ValueError(f"'{origin}' is empty: expected a header line naming its columns, then one row per example.")
    input_column = _pick(columns, input_column, TEXT_COLUMNS if kind == "text" else IMAGE_COLUMNS, origin, "input")
    label_column = _pick(columns, label_column, LABEL_COLUMNS, origin, "label", required=False)
    inputs, labels, lines, shared = [], [] if label_column else None, [], {}
    for line, row in rows:
        value = row.get(input_column)
        if value is None:
            raise ValueError(f"'{origin}', line {line}: no {input_column!r} value: fill it in or remove the line.")
        inputs.append(value if isinstance(value, str) else str(value))
        lines.append(line)
        if label_column is not None:
            label = _label(row.get(label_column), multi_label, f"'{origin}', line {line}", label_column)
            labels.append(shared.setdefault(label, label))  # one object per distinct label
    if not inputs:
        raise ValueError(f"'{origin}' has a header but no examples.")
    return Examples(object_array(inputs), labels, f"'{origin}'", lines, columns=list(columns))


def _pick(columns, asked, usual, origin, role, required=True):
    """The column `asked` for, or the first usual one present (by name, case aside)."""
    if asked is not None:
        if asked not in columns:
            option = "--text-column/--image-column" if role == "input" else "--label-column"
            raise ValueError(
                f"'{origin}' has no column {asked!r}; its columns are {list(columns)}: pass one of them as {option}."
            )
        return asked
    lowered = {str(column).strip().lower(): column for column in columns}
    found = next((lowered[name] for name in usual if name in lowered), None)
    if found is None and required:
        option = "--text-column" if "text" in usual else "--image-column"
        raise ValueError(
            f"'{origin}' has the columns {list(columns)} and none is named {' or '.join(usual[:3])}: "
            f"pass {option} NAME (and --label-column NAME)."
        )
    return found


def _label(cell, multi_label, where, column):
    if isinstance(cell, list | tuple):  # JSON Lines: a list of names
        if not multi_label:
            if len(cell) == 1:
                return str(cell[0]).strip()
            raise ValueError(
                f"{where}: {column!r} holds {len(cell)} labels {cell}: pass --multi-label "
                "(multi_label=True) for examples with several labels."
            )
        return tuple(sorted({str(name).strip() for name in cell if str(name).strip()}))
    if cell is None or (isinstance(cell, float) and cell != cell) or (not multi_label and not str(cell).strip()):
        raise ValueError(f"{where}: the {column!r} cell is empty: fill in the label, or remove the line.")
    if not multi_label and isinstance(cell, str) and "|" in cell and len(split_label(cell, True)) > 1:
        raise ValueError(
            f"{where}: the label {cell!r} names several classes: pass --multi-label (multi_label=True) "
            "for examples with several labels, separated by '|'."
        )
    return split_label(cell, multi_label)


def _decoded_lines(path, encoding):
    """The lines of `path` as text, each error naming its line. Encodings in
    which a newline is one byte are decoded line by line (exact line
    numbers); others (UTF-16, UTF-32) by the file object."""
    bad = "pass --encoding (encoding=) with the file's encoding (e.g. latin-1, cp1252, utf-16), or re-save it as UTF-8."
    if "\n".encode(encoding) != b"\n":
        try:
            with open(path, encoding=encoding, newline="") as file:
                yield from file
        except UnicodeError as error:
            raise ValueError(f"'{path}': not {encoding} text ({error.reason}): {bad}") from None
        return
    with open(path, "rb") as file:
        for number, raw in enumerate(file, 1):
            if number == 1 and encoding.replace("-", "").lower() == "utf8":
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark (Excel's "CSV UTF-8")
            try:
                yield raw.decode(encoding)
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"'{path}', line {number}: not {encoding} text (byte {raw[error.start]:#04x} at column "
                    f"{error.start + 1}): {bad}"
                ) from None


@contextlib.contextmanager
def _long_fields():
    """Texts longer than csv's default field limit (128 KiB) allowed, for
    this read only (the limit is the module's global)."""
    previous = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _csv_rows(path, encoding, delimiter):
    """`(None, header)`, then `(line, {column: cell})` per row of a CSV or TSV."""
    reader = csv.reader(_decoded_lines(path, encoding), delimiter=delimiter)
    with _long_fields():
        try:
            header = next(reader, None)
            yield None, [name.strip() for name in header] if header else None
            line = reader.line_num + 1
            for cells in reader:
                if cells:  # a blank line
                    if len(cells) != len(header):
                        raise ValueError(
                            f"'{path}', line {line}: {len(cells)} cells, the header names {len(header)} "
                            f"({header}): quote cells holding {delimiter!r} or a newline, or fix the line."
                        )
                    yield line, dict(zip(header, cells))
                line = reader.line_num + 1
        except csv.Error as error:
            raise ValueError(f"'{path}', line {reader.line_num}: {error}: fix the quoting on that line.") from None


def _json_rows(path, encoding):
    """`(None, keys)` (the first object's), then `(line, object)` per JSON Lines row."""
    started = False
    for number, text in enumerate(_decoded_lines(path, encoding), 1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"'{path}', line {number}: not JSON ({error.msg}, column {error.colno}): fix or remove the line "
                "(JSON Lines holds one object per line)."
            ) from None
        if not isinstance(row, dict):
            raise ValueError(f"'{path}', line {number}: a JSON {type(row).__name__}, not an object of named fields.")
        if not started:
            yield None, list(row)  # the first object's keys: a later one may lack an optional field
            started = True
        yield number, row


def _from_text_lines(path, encoding):
    """Unlabelled texts, one per non-empty line."""
    texts, lines = [], []
    for number, text in enumerate(_decoded_lines(path, encoding), 1):
        if text.strip():
            texts.append(text.rstrip("\r\n"))
            lines.append(number)
    return Examples(object_array(texts), None, f"'{path}'", lines)


def _from_frame(frame, kind, input_column, label_column, multi_label):
    columns = [str(column) for column in frame.columns]
    usual = TEXT_COLUMNS if kind == "text" else IMAGE_COLUMNS
    input_column = _pick(columns, input_column, usual, "the DataFrame", "input")
    label_column = _pick(columns, label_column, LABEL_COLUMNS, "the DataFrame", "label", required=False)
    rows = [f"row {index!r}" for index in frame.index]
    inputs = frame[input_column].tolist()
    for row, value in zip(rows, inputs):
        if not isinstance(value, str):
            raise ValueError(f"the DataFrame, {row}: {input_column!r} is {value!r}, not a string.")
    labels = None
    if label_column is not None:
        cells = frame[label_column].tolist()
        labels = [_label(cell, multi_label, f"the DataFrame, {row}", label_column) for row, cell in zip(rows, cells)]
    return Examples(object_array(inputs), labels, "the DataFrame", rows, columns=columns)


def _from_lists(data, multi_label):
    if len(data) != 2:
        raise ValueError(f"Expected (inputs, labels): two lists. Received a {type(data).__name__} of {len(data)}.")
    inputs, labels = data
    if len(inputs) != len(labels):
        raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels: pass one label per input.")
    labels = [_label(label, multi_label, f"label {i + 1}", "labels") for i, label in enumerate(labels)]
    return Examples(object_array(list(inputs)), labels, "the lists given")


def object_array(values):
    array = np.empty(len(values), dtype=object)
    array[:] = values  # not np.asarray: it would pad every string to the longest
    return array


def _image_paths(examples, folder):
    """The image paths, relative to the table's folder, each checked to exist."""
    paths = []
    for index, path in enumerate(examples.inputs):
        full = os.path.normpath(os.path.join(folder, os.path.expanduser(path)))
        if not os.path.isfile(full):
            raise FileNotFoundError(
                f"{examples.where(index)}: no image at '{full}' (paths are relative to the table's folder): "
                "fix the path or remove the line."
            )
        paths.append(full)
    return object_array(paths)
