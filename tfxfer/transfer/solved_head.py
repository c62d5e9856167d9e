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
    custom_loss = model.compiled_by_user and not isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
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
    problems are independent, so they are solved in parallel threads
    (liblinear releases the GIL): the same result as one multi-class
    `LinearSVC`, in half the time on 2 cores."""
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
    else:
        with ThreadPoolExecutor(min(len(classes), os.cpu_count() or 1)) as pool:
            rows = list(pool.map(one_against_rest, classes))
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


def accuracy(scores, labels):
    return float(np.mean(np.asarray(scores).argmax(1) == labels))


def best_temperature(scores, labels):
    """The scale of the scores into logits with the least log-loss."""
    return min(TEMPERATURES, key=lambda t: log_loss(t * scores, labels))


def log_loss(logits, labels):
    logits = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probabilities[np.arange(len(labels)), labels]))


def stack_rows(first, second):
    if scipy.sparse.issparse(first):
        return scipy.sparse.vstack([first, second], format="csr")
    return np.concatenate([first, second])


def is_small(val_y, units):
    """Whether a validation split is too small to choose settings on."""
    return len(val_y) < SMALL_VALIDATION * units


def fit_linear_head(head, dense, features, labels, weights, val_features, val_y, seed, refit=False, c="auto"):
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
    and its check against the head)."""
    inputs, val_inputs = head_inputs(head, dense, features, val_features)
    labels, val_y, units = np.asarray(labels), np.asarray(val_y), dense.units
    all_labels = np.concatenate([labels, val_y])
    folds = stratified_folds(all_labels, seed) if is_small(val_y, units) else None
    extra = {}
    if folds:  # every labelled example judges the settings once
        train_count = len(labels)
        inputs = stack_rows(inputs, val_inputs)
        weights = None if weights is None else np.concatenate([weights, np.ones(len(val_y), "float32")])
        labels, extra = all_labels, {"cross_validated": [len(folds)]}

        def judged(candidate):  # (scores of the judging examples, their labels, the head if one was solved)
            return out_of_fold_scores(inputs, labels, weights, candidate, seed, units, folds), labels, None

    else:

        def judged(candidate):
            kernel, bias = solve(inputs, labels, weights, candidate, seed, units)
            return val_inputs @ kernel + bias, val_y, (kernel, bias)

    # each candidate is solved once; the chosen one's fits are reused
    results = {k: judged(k) for k in (c_candidates(inputs) if c == "auto" else [c])}
    c = max(results, key=lambda k: accuracy(*results[k][:2]))  # ties: the first, the grid's middle
    val_scores, judged_y, solved = results[c]
    if folds:  # the head learns from the training examples, and from the validation ones with refit
        rows = slice(None) if refit else slice(train_count)
        inputs, labels, weights = inputs[rows], labels[rows], None if weights is None else weights[rows]
        solved = solve(inputs, labels, weights, c, seed, units)
    kernel, bias = solved
    scale = best_temperature(val_scores, judged_y)
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
        all_weights = None if weights is None else np.concatenate([weights, np.ones(len(val_y))])
        kernel, bias = solve(stack_rows(inputs, val_inputs), all_labels, all_weights, c, seed, units)
    dense.set_weights([scale * kernel, scale * bias])
    return history
