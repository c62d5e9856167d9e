"""Self-training: the unlabelled target data labels itself, a share at a time.

Round 0 trains the head on the labelled examples alone (the supervised
model). Each later round predicts the unlabelled examples and keeps, per
predicted class, the most confident ones above `threshold`, a growing share
of the pool (round r of R: r/R of it, so that one class cannot swamp the
rest: curriculum labelling, Cascante-Bonilla et al. 2021); then it trains the
head afresh on the labelled and the pseudo-labelled examples, the latter
down-weighted. Everything runs on the source's cached features, so a round
costs a head's training, not a pass of the source.

A round is kept while its validation accuracy stays within the noise of
the best so far (`noise_margin`: 1/sqrt(validation examples), about two
standard errors; on 20 validation posts one or two posts decide nothing);
the first round below that ends the training, and the last round kept is
the model's. When pseudo-labels hurt beyond the noise (off-distribution
unlabelled data, a weak source), the supervised head stays, and the log
says so. A validation split with fewer than 5 examples per class cannot
judge a round: a solved linear head is then judged by cross-validation
over the labelled and validation examples together (`_self_train_by_folds`).
"""

import dataclasses
import math

import numpy as np
import scipy.sparse

from tfxfer.data.datasets import stratified_split
from tfxfer.transfer.budget import noise_margin
from tfxfer.transfer.feature_cache import fit_head_on_features, head_on_features, source_features
from tfxfer.transfer.solved_head import (
    accuracy,
    best_temperature,
    cross_validated_c,
    fold_scores,
    head_inputs,
    is_small,
    linear_head,
    solve,
    stack_rows,
    stratified_folds,
)


@dataclasses.dataclass
class SelfTrainingResult:
    """What `self_train` did.

    `history`: one dict per round (`round`, `pseudo_labels`, `precision`:
    the estimated precision of the pseudo-labels, from the same selection
    applied to the labelled validation examples, `val_accuracy`; both
    out-of-fold figures when the rounds were cross-validated);
    `best_round`: the round whose head the model keeps (0: supervised),
    the last one within `noise_margin` of the best validation accuracy;
    `pseudo_indices`, `pseudo_labels`: the unlabelled examples that round
    labelled, and their labels.
    """

    history: list
    best_round: int
    pseudo_indices: np.ndarray
    pseudo_labels: np.ndarray


def self_train(
    model,
    x,
    y,
    x_unlabelled,
    validation_data=None,
    rounds=5,
    threshold=0.0,
    pseudo_label_weight=0.5,
    batch_size=32,
    learning_rate=3e-3,
    validation_split=0.2,
    solver="auto",
    refit=True,
    cache_dir=None,
    progress=True,
    verbose="auto",
    seed=0,
):
    """Trains `model`'s head on `x, y` and on pseudo-labels of `x_unlabelled`.

    Args:
        model: a task model (`ImageClassifier`, `TextClassifier`); its
            source stays frozen, as in `fit_head`.
        x, y: the labelled examples; `x_unlabelled`: unlabelled examples of
            the same kind (images or texts).
        validation_data: `(x_val, y_val)`, labelled examples kept out of
            training; by default a stratified `validation_split` of `x, y`.
        rounds: pseudo-labelling rounds after the supervised one; round r
            may label up to r/rounds of the unlabelled pool, per class.
        threshold: the least softmax confidence a pseudo-label needs.
        pseudo_label_weight: the sample weight of a pseudo-labelled example
            (a labelled one weighs 1).
        solver: of each round's head (see `fit_head`); `"auto"`: a linear
            head is solved exactly, seconds per round (a linear SVM's
            margin suits pseudo-labels: on 20 Newsgroups at 10 labels per
            class it self-trains 5 points above a logistic regression).
        refit: a solved linear head is fitted again, once the best round is
            known, on its examples and the validation examples (see
            `fit_head`). Without it the model never learns from the
            validation examples (cross-validated rounds included), as
            fine-tuning after it needs them held out.
        batch_size, learning_rate: of each round's Adam training (see `fit_head`).

    Returns:
        a `SelfTrainingResult`; `model` holds the best round's head.

    Example:

    >>> import numpy as np, tfxfer
    >>> texts = np.array(["rocket orbit launch", "god faith church"] * 20, dtype=object)
    >>> labels = np.array([0, 1] * 20)
    >>> model = tfxfer.TextClassifier.from_word_vectors(None, texts, 2, dim=4, encoder="hybrid")
    >>> result = tfxfer.self_train(model, texts[:8], labels[:8], texts[8:], (texts[8:16], labels[8:16]),
    ...                            rounds=2, progress=False, verbose=0)
    >>> result.history[0]["val_accuracy"]
    1.0
    """
    if not 0.0 < pseudo_label_weight <= 1.0:
        raise ValueError(f"pseudo_label_weight must be in (0, 1]. Received: pseudo_label_weight={pseudo_label_weight}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(
            f"threshold is the least softmax confidence of a pseudo-label, in [0, 1). Received: threshold={threshold}"
        )
    if int(rounds) < 1:
        raise ValueError(f"rounds must be at least 1. Received: rounds={rounds}")
    y = np.asarray(y)
    if validation_data is None:
        x = np.asarray(x, dtype=object) if isinstance(x, list) else x
        (x, y), validation_data = stratified_split(x, y, validation_split, seed)
    val_x, val_y = validation_data
    val_y = np.asarray(val_y)
    features, pool, val_features = (
        _in_memory(source_features(model, inputs, labels, batch_size, cache_dir, progress, adapt=False))
        for inputs, labels in ((x, y), (x_unlabelled, None), (val_x, val_y))
    )
    if hasattr(model, "adapt_feature_scaling"):  # on the pool too: few labels give noisy statistics
        # Afresh: the head is trained anew, maybe on a fine-tuned source's features.
        model.adapt_feature_scaling(stack_rows(features, pool), refresh=True)
    head = head_on_features(model, features)  # builds the head layers, so their start can be kept
    start = head.get_weights()

    svm_c = "auto"  # a solved head's C, chosen on validation in round 0 and then kept

    def train(round_features, round_labels, weights, refit=False):
        nonlocal svm_c
        head.set_weights(start)  # each round trains afresh: earlier mistakes are not built on
        history = fit_head_on_features(
            model,
            round_features,
            round_labels,
            batch_size=batch_size,
            learning_rate=learning_rate,
            validation_data=(val_features, val_y),
            verbose=0,
            fresh_optimizer=True,
            solver=solver,
            seed=seed,
            refit=refit,
            svm_c=svm_c,
            sample_weight=weights,
        )
        svm_c = history.history.get("C", [svm_c])[0]
        return _probabilities(head, pool, batch_size), _probabilities(head, val_features, batch_size)

    log = print if verbose else (lambda *args: None)
    dense = linear_head(model) if solver == "auto" else None
    folds = None
    if dense is not None and is_small(val_y, dense.units):
        folds = stratified_folds(np.concatenate([y, val_y]), seed)
    if folds:
        log(
            f"self_train: {len(val_y)} validation examples are too few to judge a round; each is judged by "
            f"{len(folds)}-fold cross-validation over the {len(y) + len(val_y)} labelled examples"
        )
        labelled, labels = stack_rows(features, val_features), np.concatenate([y, val_y])
        model_rows = np.arange(len(labels) if refit else len(y))  # what the model's own chain learns from
        history, best_round, best_pick = _self_train_by_folds(
            head, dense, labelled, labels, model_rows, pool, folds, rounds, threshold, pseudo_label_weight, seed, log
        )
    else:
        history, best_round, best_pick = _self_train_on_validation(
            head,
            train,
            features,
            y,
            pool,
            val_y,
            rounds,
            threshold,
            pseudo_label_weight,
            refit and solver == "auto",
            log,
        )
    if not getattr(model, "compiled", False):
        model.compile()
    if best_round == 0:
        margin = noise_margin(len(y) + len(val_y) if folds else len(val_y))
        log(
            "self_train: pseudo-labels lowered the validation accuracy beyond its noise "
            f"({history[0]['val_accuracy']:.4f} -> {history[-1]['val_accuracy']:.4f}, margin {margin:.3f}); "
            "keeping the supervised head."
        )
    return SelfTrainingResult(history, best_round, *best_pick)


def _self_train_on_validation(head, train, features, y, pool, val_y, rounds, threshold, weight, refit, log):
    """The rounds, each judged on the validation split: `train(features,
    labels, weights)` trains `head` afresh and returns its probabilities of
    the pool and of the validation examples."""
    pool_probs, val_probs = train(features, y, np.ones(len(y), "float32"))
    best = _round_record(0, 0, None, val_probs, val_y)
    history, best_weights = [best], head.get_weights()
    best_data = (features, y, np.ones(len(y), "float32"))
    best_pick = (np.zeros(0, int), np.zeros(0, int))
    log(f"self_train round 0 (labelled only): val accuracy {best['val_accuracy']:.4f}")
    num_classes = val_probs.shape[1]
    best_accuracy, margin = best["val_accuracy"], noise_margin(len(val_y))
    for round_ in range(1, int(rounds) + 1):
        quota = math.ceil(round_ / rounds * pool.shape[0] / num_classes)
        picked = _confident(pool_probs, quota, threshold)
        val_picked = _confident(val_probs, math.ceil(round_ / rounds * len(val_y) / num_classes), threshold)
        precision = float(np.mean(val_probs[val_picked].argmax(1) == val_y[val_picked])) if len(val_picked) else None
        labels = pool_probs[picked].argmax(1)
        weights = np.concatenate([np.ones(len(y)), np.full(len(picked), weight)]).astype("float32")
        round_data = (stack_rows(features, pool[picked]), np.concatenate([y, labels]), weights)
        pool_probs, val_probs = train(*round_data)
        record = _round_record(round_, len(picked), precision, val_probs, val_y)
        history.append(record)
        log(
            f"self_train round {round_}: {len(picked)} pseudo-labels (estimated precision "
            f"{'n/a' if precision is None else f'{precision:.3f}'}), val accuracy {record['val_accuracy']:.4f}"
        )
        if record["val_accuracy"] < best_accuracy - margin:
            break  # this round hurt beyond noise: later, larger shares will not help either
        best_accuracy = max(best_accuracy, record["val_accuracy"])
        best, best_weights, best_pick, best_data = record, head.get_weights(), (picked, labels), round_data
    head.set_weights(best_weights)
    if refit:
        train(*best_data, refit=True)  # the validation examples join the chosen round's
    return history, best["round"], best_pick


def _self_train_by_folds(head, dense, labelled, labels, model_rows, pool, folds, rounds, threshold, weight, seed, log):
    """The rounds of a solved linear head, each judged by cross-validation:
    one self-training chain per fold, on the other folds' labelled examples
    and the pseudo-labels that chain's own head picks, predicts the fold; a
    round's accuracy is that of all those out-of-fold predictions. A last
    chain on the labelled examples `model_rows` (the training ones, or all
    with `refit`) gives the model its head."""
    inputs, pool_inputs = head_inputs(head, dense, labelled, pool)
    units, count = dense.units, len(labels)
    c = cross_validated_c(inputs, labels, None, seed, units, folds)
    chains = [train for train, _ in folds] + [model_rows]

    def solve_chain(train, picked, pseudo_labels):
        rows = stack_rows(inputs[train], pool_inputs[picked])
        weights = np.concatenate([np.ones(len(train)), np.full(len(picked), weight)]).astype("float32")
        return solve(rows, np.concatenate([labels[train], pseudo_labels]), weights, c, seed, units)

    nothing = np.zeros(0, int)
    solved = [solve_chain(train, nothing, nothing) for train in chains]
    scores = fold_scores(inputs, folds, solved)
    scale = best_temperature(scores, labels)  # confidences for the picks, kept for every round
    history = [_round_record(0, 0, None, scores, labels)]
    best = (history[0], solved[-1], scores, (nothing, nothing))
    log(f"self_train round 0 (labelled only): cross-validated accuracy {history[0]['val_accuracy']:.4f}")
    best_accuracy, margin = history[0]["val_accuracy"], noise_margin(count)
    for round_ in range(1, int(rounds) + 1):
        quota = math.ceil(round_ / rounds * pool.shape[0] / units)
        judged = _confident(_softmax(scale * scores), math.ceil(round_ / rounds * count / units), threshold)
        precision = float(np.mean(scores[judged].argmax(1) == labels[judged])) if len(judged) else None
        picks = []
        for kernel, bias in solved:
            probabilities = _softmax(scale * (pool_inputs @ kernel + bias))
            picked = _confident(probabilities, quota, threshold)
            picks.append((picked, probabilities[picked].argmax(1)))
        solved = [solve_chain(train, *pick) for train, pick in zip(chains, picks)]
        scores = fold_scores(inputs, folds, solved)
        record = _round_record(round_, len(picks[-1][0]), precision, scores, labels)
        history.append(record)
        log(
            f"self_train round {round_}: {record['pseudo_labels']} pseudo-labels (estimated precision "
            f"{'n/a' if precision is None else f'{precision:.3f}'}), cross-validated accuracy "
            f"{record['val_accuracy']:.4f}"
        )
        if record["val_accuracy"] < best_accuracy - margin:
            break  # as on a validation split
        best_accuracy = max(best_accuracy, record["val_accuracy"])
        best = (record, solved[-1], scores, picks[-1])
    record, (kernel, bias), scores, pick = best
    scale = best_temperature(scores, labels)
    dense.set_weights([scale * kernel, scale * bias])
    return history, record["round"], pick


def _in_memory(features):
    """Cached features read into memory (sparse ones stay sparse)."""
    return features if scipy.sparse.issparse(features) else np.asarray(features)


def _probabilities(head, features, batch_size):
    return _softmax(head.predict(features, batch_size=max(batch_size, 256), verbose=0))


def _softmax(logits):
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def _confident(probabilities, quota, threshold):
    """Indices of the `quota` most confident examples of each predicted
    class whose confidence reaches `threshold`."""
    predicted, confidence = probabilities.argmax(1), probabilities.max(1)
    picked = []
    for label in np.unique(predicted):
        members = np.flatnonzero((predicted == label) & (confidence >= threshold))
        picked.append(members[np.argsort(-confidence[members], kind="stable")[:quota]])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, int)


def _round_record(round_, count, precision, val_scores, val_y):
    return {
        "round": round_,
        "pseudo_labels": int(count),
        "precision": precision,
        "val_accuracy": accuracy(val_scores, val_y),
    }
