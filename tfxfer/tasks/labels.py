"""`ClassLabels`: a classifier's class names, and how its logits become named predictions.

A task model keeps one (`model.class_labels`), saved in its `.keras` file,
so a reloaded model names its predictions without the run folder. A
multi-label model has one sigmoid per class and a threshold per class
(chosen on validation data, `choose_thresholds`); a single-label model
one softmax.

>>> labels = ClassLabels.of(3, ["cat", "dog", "owl"])
>>> labels.rows(np.array([[0.1, 0.7, 0.2]]), top_k=2)
[{'label': 'dog', 'probability': 0.7, 'top_k': [['dog', 0.7], ['owl', 0.2]]}]
"""

import dataclasses

import numpy as np

DEFAULT_THRESHOLD = 0.5
THRESHOLD_CANDIDATES = tuple(np.round(np.linspace(0.05, 0.95, 19), 2))


@dataclasses.dataclass(frozen=True)
class ClassLabels:
    names: tuple
    multi_label: bool = False
    thresholds: tuple | None = None  # per class; multi-label only

    @classmethod
    def numbered(cls, num_classes, multi_label=False):
        return cls(tuple(str(i) for i in range(int(num_classes))), multi_label)

    @classmethod
    def of(cls, num_classes, class_names=None, multi_label=False, thresholds=None):
        """Checked labels of a model with `num_classes` outputs."""
        if class_names is None:
            return cls.numbered(num_classes, multi_label)
        names = tuple(str(name) for name in class_names)
        if len(names) != int(num_classes) or len(set(names)) != len(names):
            raise ValueError(
                f"class_names must name each of the {num_classes} classes once. Received {len(names)} names "
                f"({len(set(names))} distinct): {list(names)[:10]}"
            )
        if thresholds is not None:
            thresholds = tuple(float(t) for t in thresholds)
            if not multi_label or len(thresholds) != len(names):
                raise ValueError(f"thresholds: one per class of a multi-label model. Received {len(thresholds)}.")
        return cls(names, bool(multi_label), thresholds)

    def with_thresholds(self, thresholds):
        return ClassLabels.of(len(self.names), self.names, self.multi_label, thresholds)

    def probabilities(self, logits):
        """Softmax of `logits`, or a sigmoid per class when multi-label (numpy)."""
        logits = np.asarray(logits, dtype="float64")
        if self.multi_label:
            return (1.0 / (1.0 + np.exp(-logits))).astype("float32")
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return (shifted / shifted.sum(axis=-1, keepdims=True)).astype("float32")

    def threshold_array(self):
        return np.asarray(self.thresholds or [DEFAULT_THRESHOLD] * len(self.names), "float32")

    def predicted(self, probabilities):
        """Class ids (argmax), or multi-hot rows (each class at its threshold)."""
        probabilities = np.asarray(probabilities)
        if self.multi_label:
            return (probabilities >= self.threshold_array()).astype("float32")
        return probabilities.argmax(axis=-1)

    def rows(self, probabilities, top_k=1):
        """One dict per example: `label`, `probability`, `top_k` pairs (and
        `labels`, the predicted set, when multi-label)."""
        probabilities = np.asarray(probabilities)
        top_k = max(1, min(int(top_k), len(self.names)))
        order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :top_k]
        rows = []
        for p, best in zip(probabilities, order):
            row = {
                "label": self.names[best[0]],
                "probability": round(float(p[best[0]]), 6),
                "top_k": [[self.names[i], round(float(p[i]), 6)] for i in best],
            }
            if self.multi_label:
                row["labels"] = [self.names[i] for i in np.flatnonzero(p >= self.threshold_array())]
            rows.append(row)
        return rows

    def config(self):
        """The task-model arguments that rebuild these labels."""
        thresholds = list(self.thresholds) if self.thresholds is not None else None
        return {"class_names": list(self.names), "multi_label": self.multi_label, "thresholds": thresholds}


def choose_thresholds(probabilities, y, candidates=THRESHOLD_CANDIDATES):
    """Per class, the threshold of `candidates` with the best F1 on
    `(probabilities, y)` (validation data; ties: the one nearest 0.5). A
    class without a positive example keeps 0.5."""
    probabilities, y = np.asarray(probabilities), np.asarray(y) > 0.5
    thresholds = []
    for c in range(y.shape[1]):
        if not y[:, c].any():
            thresholds.append(DEFAULT_THRESHOLD)
            continue
        scores = []
        for t in candidates:
            predicted = probabilities[:, c] >= t
            true_positives = np.sum(predicted & y[:, c])
            scores.append(2 * true_positives / max(predicted.sum() + y[:, c].sum(), 1))
        best = max(scores)
        ties = [t for t, score in zip(candidates, scores) if score >= best - 1e-12]
        thresholds.append(float(min(ties, key=lambda t: abs(t - DEFAULT_THRESHOLD))))
    return thresholds
