"""Examples with their labels as names, before the labels become numbers.

Every reader of a user's data (a CSV, a JSON Lines file, a folder, a
DataFrame) returns `Examples`: the inputs (texts, or image paths), each
one's label name (a tuple of names for multi-label data; None where the
data has no labels), and where each came from, for messages. The class
names are the sorted label names (numerically when all are integers);
`encoded` turns the names into the integers (or multi-hot rows) a model
trains on, refusing a label the training data did not have by its line.

>>> examples = Examples(["a b", "c", "d"], ["spam", "ham", "spam"], "mail.csv", lines=[2, 3, 4])
>>> y, names = examples.encoded()
>>> y.tolist(), names
([1, 0, 1], ['ham', 'spam'])
>>> Examples(["e"], ["eggs"], "test.csv", lines=[2]).encoded(names)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: test.csv, line 2: the label 'eggs' is not one of the training data's classes ['ham', 'spam']: ...
"""

import dataclasses

import numpy as np

MULTI_LABEL_SEPARATOR = "|"


@dataclasses.dataclass
class Examples:
    """Inputs, their label names and their origin.

    Attributes:
        inputs: a 1-D object array of texts or image paths (or an image array).
        labels: per input a label name, or a tuple of names (multi-label);
            None for unlabelled data.
        origin: the file, folder or object they were read from.
        lines: per input, its line in `origin` (or a row's name), for messages.
        names: the classes in the source's own order (CIFAR-10's, say);
            by default the label names, sorted.
        columns: a table's columns, for messages.
    """

    inputs: object
    labels: list | None
    origin: str
    lines: list | None = None
    names: list | None = None
    columns: list | None = None

    def __post_init__(self):
        if not isinstance(self.inputs, np.ndarray):
            self.inputs = np.asarray(self.inputs, dtype=object)

    def __len__(self):
        return len(self.inputs)

    def where(self, index):
        """`origin, line N` of example `index`."""
        if self.lines is None:
            return f"{self.origin}, example {index + 1}"
        line = self.lines[index]
        return f"{self.origin}, {line}" if isinstance(line, str) else f"{self.origin}, line {line}"

    @property
    def multi_label(self):
        return self.labels is not None and any(isinstance(label, tuple) for label in self.labels)

    def class_names(self):
        """The source's class names, or the sorted label names (numerically when all are integers)."""
        self._require_labels()
        if self.names is not None:
            return list(self.names)
        names = {name for label in self.labels for name in _names(label)}
        return sorted_names(names)

    def encoded(self, class_names=None, multi_label=None):
        """`(y, class_names)`: integer labels (multi-hot float32 rows for
        multi-label data) in the order of `class_names` (by default this
        data's own, sorted)."""
        self._require_labels()
        multi_label = self.multi_label if multi_label is None else multi_label
        names = list(class_names) if class_names is not None else self.class_names()
        index = {name: i for i, name in enumerate(names)}
        if multi_label:
            y = np.zeros((len(self.labels), len(names)), "float32")
            for row, label in enumerate(self.labels):
                for name in _names(label):
                    y[row, self._index(index, name, row, names)] = 1.0
            return y, names
        if self.multi_label:
            row = next(i for i, label in enumerate(self.labels) if isinstance(label, tuple) and len(label) != 1)
            raise ValueError(
                f"{self.where(row)}: {len(self.labels[row])} labels {list(self.labels[row])} for one example: "
                "pass --multi-label (multi_label=True) for data whose examples may have several labels."
            )
        ids = (self._index(index, _names(label)[0], row, names) for row, label in enumerate(self.labels))
        return np.fromiter(ids, "int64", len(self.labels)), names

    def _index(self, index, name, row, names):
        try:
            return index[name]
        except KeyError:
            raise ValueError(
                f"{self.where(row)}: the label {name!r} is not one of the training data's classes "
                f"{_shown(names)}: fix the label, or add examples of it to the training data."
            ) from None

    def take(self, keep):
        """The examples at the indices (or mask) `keep`."""
        keep = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
        labels, lines = (None if values is None else [values[i] for i in keep] for values in (self.labels, self.lines))
        return dataclasses.replace(self, inputs=self.inputs[keep], labels=labels, lines=lines)

    def _require_labels(self):
        if self.labels is None and self.columns is not None:
            raise ValueError(
                f"{self.origin} has no label column (its columns: {list(self.columns)}): pass --label-column NAME "
                "(label_column=); training and evaluation need a label for each example."
            )
        if self.labels is None:
            raise ValueError(f"{self.origin} has no labels: training and evaluation need a label for each example.")


def _names(label):
    return label if isinstance(label, tuple) else (label,)


def _shown(names, most=20):
    return str(list(names)) if len(names) <= most else f"{list(names[:most])[:-1]} ... ({len(names)} in all)"


def sorted_names(names):
    """`names` sorted as numbers when every one is an integer ('2' before '10'), else as text."""
    names = list(names)
    try:
        return sorted(names, key=int)
    except ValueError:
        return sorted(names)


def split_label(cell, multi_label):
    """A label cell as a name, or for multi-label data a tuple of the names
    between `|` (empty ones dropped: `"a|"` is `("a",)`)."""
    cell = str(cell).strip()
    if not multi_label:
        return cell
    return tuple(sorted({part.strip() for part in cell.split(MULTI_LABEL_SEPARATOR) if part.strip()}))
