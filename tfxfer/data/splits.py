"""How examples are split: held-out splits stratified by class, and few
labels per class drawn the same way everywhere (the CLI's
`--labels-per-class`, the demo, the benchmarks).

>>> import numpy as np
>>> labelled, rest = few_label_split(np.array([0, 0, 0, 1, 1, 1]), 2, seed=0)
>>> len(labelled), len(rest), np.bincount(np.array([0, 0, 0, 1, 1, 1])[labelled]).tolist()
(4, 2, [2, 2])
"""

import numpy as np


def stratified_split(x, y, fraction, seed=0):
    """`(x, y), (x_held, y_held)`: a stratified `fraction` held out, and at
    least one example of each class (so a few labels per class still split)."""
    from sklearn.model_selection import train_test_split

    y = np.asarray(y)
    if y.ndim == 2:  # multi-hot rows: label sets have no strata; a seeded random split
        held = min(max(int(np.ceil(fraction * len(y))), 1), len(y) - 1)
        x_kept, x_held, y_kept, y_held = train_test_split(x, y, test_size=held, random_state=seed)
        return (x_kept, y_kept), (x_held, y_held)
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        raise ValueError(
            f"Class {classes[counts.argmin()]} has {counts.min()} example: holding out a stratified validation "
            "split needs at least 2 per class. Give more labelled examples per class."
        )
    held = min(max(int(np.ceil(fraction * len(y))), len(classes)), len(y) - len(classes))  # ceil: as scikit-learn
    x_kept, x_held, y_kept, y_held = train_test_split(x, y, test_size=held, random_state=seed, stratify=y)
    return (x_kept, y_kept), (x_held, y_held)


def few_label_split(labels, per_class, seed=0):
    """`(labelled, rest)`: indices of at most `per_class` examples of each
    class (in random order), and of all the others (sorted)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        picked.append(rng.choice(members, min(per_class, len(members)), replace=False))
    labelled = rng.permutation(np.concatenate(picked))
    return labelled, np.setdiff1d(np.arange(len(labels)), labelled)


def shared_examples(x_train, x_test):
    """Indices of the test examples whose content (text, or image bytes) is
    also in the training split: a leaked test set inflates its accuracy.
    Blank texts (a post that stripping emptied) carry no content: left out."""
    import hashlib

    def digest(example):
        data = example.encode("utf-8", "surrogatepass") if isinstance(example, str) else np.ascontiguousarray(example)
        return hashlib.blake2b(data, digest_size=16).digest()

    def blank(example):
        return isinstance(example, str) and not example.strip()

    seen = {digest(example) for example in x_train if not blank(example)}
    return [i for i, example in enumerate(x_test) if not blank(example) and digest(example) in seen]
