"""A linear head on fixed features, solved exactly instead of trained.

On cached features a head that is one dense layer (after scaling and
dropout) is a convex problem: scikit-learn's `LinearSVC` solves it in
seconds, and its scores, scaled by a temperature, become the layer's
logits. Its C and the temperature are chosen on the validation examples,
or, where those are too few to tell settings apart (fewer than
`SMALL_VALIDATION` per class), by stratified k-fold cross-validation over
the training and validation examples together, as scikit-learn's `*CV`
estimators do.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import scipy.sparse

C_FACTORS = (1, 0.3, 3, 0.1, 10)  # a solved head's C, times 1 / mean |x|^2; ties go to the first
TEMPERATURES = (1, 3, 10, 30, 100)
SMALL_VALIDATION = 5  # validation examples per class below which settings are cross-validated
MOST_FOLDS = 5


def linear_head(model):
    """The head's one dense layer when the head is linear (feature scaling
    and dropout aside) and no compiled loss says otherwise; else None."""
    passive = keras.layers.Dropout | keras.layers.Normalization | keras.layers.GlobalAveragePooling2D
    layers = [layer for layer in model.head_layers if not isinstance(layer, passive)]
    dense = layers[0] if len(layers) == 1 and isinstance(layers[0], keras.layers.Dense) else None
    if dense is None or dense.activation not in (keras.activations.linear, None) or dense.kernel_regularizer:
        return None
    expected = (
        keras.losses.BinaryCrossentropy
        if getattr(model, "multi_label", False)
        else keras.losses.SparseCategoricalCrossentropy
    )
    custom_loss = model.compiled_by_user and not isinstance(model.loss, expected)
    return None if custom_loss else dense


def head_inputs(head, dense, *features):
    """What `dense` sees of each of `features`: after the head's scaling
    layers (dropout is the identity here); sparse features stay sparse."""
    before_dense = head.layers[: head.layers.index(dense)]
    before_dense = [layer for layer in before_dense if not isinstance(layer, keras.layers.Dropout)]
    if not before_dense:
        return features
    scaling = keras.Sequential([keras.Input(features[0].shape[1:]), *before_dense])
    return tuple(scaling.predict(f, batch_size=512, verbose=0) for f in features)


def solve(inputs, labels, weights, c, seed, units):
    """A `LinearSVC` (one class against the rest) of `labels` on `inputs`,
    as a dense layer's `(kernel, bias)` with `units` outputs. The classes'
    problems are independent: with more examples than features (liblinear's
    primal solver, which draws no random numbers) they are solved in
    parallel threads (liblinear releases the GIL), the same result as one
    multi-class `LinearSVC` in half the time on 2 cores. Wider inputs (a
    TF-IDF) go to the dual solver, whose random order of examples comes
    from one generator shared by every thread: solved one after the other,
    so that a seed gives the same head every time."""
    from sklearn.svm import LinearSVC

    labels = np.asarray(labels)
    classes = np.unique(labels)
    inputs = inputs.astype(np.float64) if scipy.sparse.issparse(inputs) else np.asarray(inputs, np.float64, order="C")

    def one_against_rest(positive):  # a binary LinearSVC's one row scores its second class, `positive`
        svm = LinearSVC(C=c, dual="auto", random_state=seed).fit(inputs, labels == positive, sample_weight=weights)
        return svm.coef_[0], svm.intercept_[0]

    if len(classes) == 2:  # one problem: class 1's score, class 0's its negative
        coef, intercept = one_against_rest(classes[1])
        rows = [(-coef, -intercept), (coef, intercept)]
    elif inputs.shape[0] > inputs.shape[1]:  # the primal solver: no shared random state to race on
        with ThreadPoolExecutor(min(len(classes), os.cpu_count() or 1)) as pool:
            rows = list(pool.map(one_against_rest, classes))
    else:
        rows = [one_against_rest(positive) for positive in classes]
    kernel = np.zeros((inputs.shape[1], units), "float32")
    bias = np.full(units, -30.0, "float32")  # a class never seen is not predicted
    kernel[:, classes] = np.stack([row for row, _ in rows], axis=1)
    bias[classes] = [intercept for _, intercept in rows]
    return kernel, bias


def c_candidates(inputs):
    """`C_FACTORS` divided by the mean squared norm of the inputs: the hinge
    loss sums over examples while the penalty grows with the squared norm
    of the weights, so the C that balances them scales as 1 / |x|^2 (C=1 on
    the unit rows of TF-IDF, about 1e-3 on 1,280 standardized CNN features)."""
    squared_norm = inputs.multiply(inputs).sum(1).mean() if scipy.sparse.issparse(inputs) else None
    squared_norm = float(squared_norm if squared_norm is not None else np.mean(np.sum(inputs**2, axis=1)))
    return [factor / max(squared_norm, 1e-12) for factor in C_FACTORS]


def stratified_folds(labels, seed, most=MOST_FOLDS):
    """`(train, test)` index pairs of a stratified k-fold split with as many
    folds as the rarest class allows (at most `most`); None below 2."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.unique(labels, return_counts=True)[1]
    folds = min(most, int(counts.min()))
    if folds < 2:
        return None
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels))


def out_of_fold_scores(inputs, labels, weights, c, seed, units, folds):
    """Each example's scores from the head solved on the other folds."""
    solved = [
        solve(inputs[fit], labels[fit], None if weights is None else weights[fit], c, seed, units) for fit, _ in folds
    ]
    return fold_scores(inputs, folds, solved)


def fold_scores(inputs, folds, solved):
    """Each example's scores from `solved[i]`, the `(kernel, bias)` of the
    head that did not see fold i."""
    scores = np.zeros((inputs.shape[0], solved[0][1].shape[0]), "float32")
    for (_, judged), (kernel, bias) in zip(folds, solved):
        scores[judged] = inputs[judged] @ kernel + bias
    return scores


def cross_validated_c(inputs, labels, weights, seed, units, folds):
    """The C of `c_candidates` with the best out-of-fold accuracy."""
    return max(
        c_candidates(inputs),
        key=lambda c: accuracy(out_of_fold_scores(inputs, labels, weights, c, seed, units, folds), labels),
    )


def accuracy(scores, labels, weights=None):
    """The (weighted) share of `labels` the `scores` rank first."""
    return float(np.average(np.asarray(scores).argmax(1) == labels, weights=weights))


def best_temperature(scores, labels, weights=None):
    """The scale of the scores into logits with the least (weighted) log-loss."""
    return min(TEMPERATURES, key=lambda t: log_loss(t * scores, labels, weights))


def log_loss(logits, labels, weights=None):
    logits = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-np.average(log_probabilities[np.arange(len(labels)), labels], weights=weights))


def stack_rows(first, second):
    if scipy.sparse.issparse(first):
        return scipy.sparse.vstack([first, second], format="csr")
    return np.concatenate([first, second])


def is_small(val_y, units):
    """Whether a validation split is too small to choose settings on."""
    return len(val_y) < SMALL_VALIDATION * units


def fit_linear_head(
    head, dense, features, labels, weights, val_features, val_y, seed, *, refit=False, c="auto", class_weight=None
):
    """Sets `dense` to the solved head of `labels` on `features` (see the
    module), its scores scaled into logits by the temperature with the best
    validation log-loss. `c="auto"` takes the C of best validation accuracy
    among `c_candidates`; ties go to the first.

    Returns a one-epoch `History` of the training and validation loss and
    accuracy and the chosen `C` (with `cross_validated`: the folds, when
    the validation split was small; the validation figures are then
    out-of-fold ones). With `refit`, the head is then solved again on the
    training and the validation examples together (cross-validated or
    not); without it, the head never learns from the validation examples,
    which stay held out for whatever follows (fine-tuning's early stopping
    and its check against the head).

    `class_weight` (`{class id: weight}`) weighs the examples of each
    class, in the solution and in the choice of C and temperature (the
    validation examples weigh as their class): with `"balanced"` weights,
    C is chosen by balanced accuracy, not by the majority class's."""
    inputs, val_inputs = head_inputs(head, dense, features, val_features)
    labels, val_y, units = np.asarray(labels), np.asarray(val_y), dense.units
    per_class = _class_weights(class_weight, units)
    if per_class is not None:
        weights = per_class[labels] * (1.0 if weights is None else np.asarray(weights, "float32"))
    val_weights = None if per_class is None else per_class[val_y]
    all_labels = np.concatenate([labels, val_y])
    folds = stratified_folds(all_labels, seed) if is_small(val_y, units) else None
    extra = {}
    if folds:  # every labelled example judges the settings once
        train_count = len(labels)
        inputs = stack_rows(inputs, val_inputs)
        weights = None if weights is None else np.concatenate([weights, _ones_or(val_weights, len(val_y))])
        labels, extra = all_labels, {"cross_validated": [len(folds)]}
        judged_weights = None if per_class is None else per_class[labels]

        def judged(candidate):  # (scores of the judging examples, their labels, the head if one was solved)
            return out_of_fold_scores(inputs, labels, weights, candidate, seed, units, folds), labels, None

    else:
        judged_weights = val_weights

        def judged(candidate):
            kernel, bias = solve(inputs, labels, weights, candidate, seed, units)
            return val_inputs @ kernel + bias, val_y, (kernel, bias)

    # each candidate is solved once; the chosen one's fits are reused
    results = {k: judged(k) for k in (c_candidates(inputs) if c == "auto" else [c])}
    c = max(results, key=lambda k: accuracy(*results[k][:2], judged_weights))  # ties: the first, the grid's middle
    val_scores, judged_y, solved = results[c]
    if folds:  # the head learns from the training examples, and from the validation ones with refit
        rows = slice(None) if refit else slice(train_count)
        inputs, labels, weights = inputs[rows], labels[rows], None if weights is None else weights[rows]
        solved = solve(inputs, labels, weights, c, seed, units)
    kernel, bias = solved
    scale = best_temperature(val_scores, judged_y, judged_weights)
    train_logits, val_logits = scale * (inputs @ kernel + bias), scale * val_scores
    history = keras.callbacks.History()
    history.history = {
        "loss": [log_loss(train_logits, labels)],
        "accuracy": [accuracy(train_logits, labels)],
        "val_loss": [log_loss(val_logits, judged_y)],
        "val_accuracy": [accuracy(val_logits, judged_y)],
        "C": [float(c)],
        **extra,
    }
    history.set_model(head)
    if refit and not folds:  # cross-validated: the validation examples were in its rows already
        all_weights = None if weights is None else np.concatenate([weights, _ones_or(val_weights, len(val_y))])
        kernel, bias = solve(stack_rows(inputs, val_inputs), all_labels, all_weights, c, seed, units)
    dense.set_weights([scale * kernel, scale * bias])
    return history


def _class_weights(class_weight, units):
    """`{class id: weight}` as an array over the `units` classes (1 where unnamed), or None."""
    if not class_weight:
        return None
    weights = np.ones(units, "float32")
    for c, weight in class_weight.items():
        weights[int(c)] = weight
    return weights


def _ones_or(weights, count):
    return np.ones(count, "float32") if weights is None else weights


def solve_columns(inputs, y, weights, c, seed):
    """One binary `LinearSVC` per column of the multi-hot `y` (a class
    against the examples without it), in parallel threads, as a dense
    layer's `(kernel, bias)`; a class without examples of both kinds is
    never predicted (or always, if every example has it)."""
    from sklearn.svm import LinearSVC

    y = np.asarray(y) > 0.5
    inputs = inputs.astype(np.float64) if scipy.sparse.issparse(inputs) else np.asarray(inputs, np.float64, order="C")

    def column(k):
        if y[:, k].all() or not y[:, k].any():
            return np.zeros(inputs.shape[1]), 30.0 if y[:, k].all() else -30.0
        svm = LinearSVC(C=c, dual="auto", random_state=seed).fit(inputs, y[:, k], sample_weight=weights)
        return svm.coef_[0], svm.intercept_[0]

    with ThreadPoolExecutor(min(y.shape[1], os.cpu_count() or 1)) as pool:
        rows = list(pool.map(column, range(y.shape[1])))
    kernel = np.stack([row for row, _ in rows], axis=1).astype("float32")
    return kernel, np.asarray([bias for _, bias in rows], "float32")


def macro_f1(scores, y):
    """Macro-F1 of the decisions `scores >= 0` against multi-hot `y`, over the classes `y` has."""
    from sklearn.metrics import f1_score

    y = np.asarray(y) > 0.5
    present = y.any(axis=0)
    return float(f1_score(y[:, present], scores[:, present] >= 0, average="macro", zero_division=0))


def binary_log_loss(logits, y):
    logits = np.asarray(logits, np.float64)
    return float(np.mean(np.logaddexp(0, logits) - np.asarray(y) * logits))  # log(1 + e^z) - y z


def fit_multi_label_head(head, dense, features, y, weights, val_features, val_y, seed, *, refit=False, c="auto"):
    """`fit_linear_head` for a multi-label head: a `LinearSVC` per class
    (`solve_columns`), C of best validation macro-F1, the scores scaled
    into logits by the temperature of least validation binary log-loss."""
    inputs, val_inputs = head_inputs(head, dense, features, val_features)
    y, val_y = np.asarray(y, "float32"), np.asarray(val_y, "float32")
    solved = {k: solve_columns(inputs, y, weights, k, seed) for k in (c_candidates(inputs) if c == "auto" else [c])}
    c = max(solved, key=lambda k: macro_f1(val_inputs @ solved[k][0] + solved[k][1], val_y))
    kernel, bias = solved[c]
    val_scores = val_inputs @ kernel + bias
    scale = min(TEMPERATURES, key=lambda t: binary_log_loss(t * val_scores, val_y))
    train_logits = scale * (inputs @ kernel + bias)
    history = keras.callbacks.History()
    history.history = {
        "loss": [binary_log_loss(train_logits, y)],
        "accuracy": [float(np.mean((train_logits >= 0) == (y > 0.5)))],
        "val_loss": [binary_log_loss(scale * val_scores, val_y)],
        "val_accuracy": [float(np.mean((val_scores >= 0) == (val_y > 0.5)))],
        "C": [float(c)],
    }
    history.set_model(head)
    if refit:
        all_weights = None if weights is None else np.concatenate([weights, np.ones(len(val_y), "float32")])
        kernel, bias = solve_columns(stack_rows(inputs, val_inputs), np.concatenate([y, val_y]), all_weights, c, seed)
    dense.set_weights([scale * kernel, scale * bias])
    return history
