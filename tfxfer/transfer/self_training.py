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

The head of each round is solved by default (`solver="auto"`): a linear
SVM's margin suits pseudo-labels (on 20 Newsgroups at 10 labels per class
it self-trains 5 points above a logistic regression), in seconds a round.
With `refit`, a solved head is fitted once more, on its round's examples
and the validation examples; without it the model never learns from the
validation examples (cross-validated rounds included), as fine-tuning
after it needs them held out.
"""

import dataclasses
import math

import numpy as np
import scipy.sparse

from tfxfer.data.splits import stratified_split
from tfxfer.log import say
from tfxfer.transfer.budget import noise_margin
from tfxfer.transfer.contract import contract
from tfxfer.transfer.feature_cache import source_features
from tfxfer.transfer.head import fit_head_on_features, head_probabilities, softmax
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
from tfxfer.validation import check_number


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


@dataclasses.dataclass(frozen=True)
class _Schedule:
    """How the rounds pick and weigh pseudo-labels, and where they report."""

    rounds: int
    threshold: float
    weight: float  # of a pseudo-labelled example; a labelled one weighs 1
    verbose: object

    def share(self, round_, count, classes):
        """Round r of R labels up to r/R of `count` examples, per class."""
        return math.ceil(round_ / self.rounds * count / classes)

    def sample_weights(self, labelled, pseudo):
        return np.concatenate([np.ones(labelled), np.full(pseudo, self.weight)]).astype("float32")

    def say(self, message):
        say(self.verbose, message)

    def say_supervised_kept(self, history, judged_on):
        margin = noise_margin(judged_on)
        self.say(
            "self_train: pseudo-labels lowered the validation accuracy beyond its noise "
            f"({history[0]['val_accuracy']:.4f} -> {history[-1]['val_accuracy']:.4f}, margin {margin:.3f}); "
            "keeping the supervised head."
        )

    @classmethod
    def checked(cls, rounds, threshold, weight, verbose):
        check_number("pseudo_label_weight", weight, 0.0, 1.0, low_open=True)
        check_number("threshold", threshold, 0.0, 1.0, high_open=True, hint=" (the least softmax confidence)")
        check_number("rounds", rounds, 1, integer=True)
        return cls(int(rounds), threshold, weight, verbose)


def self_train(
    model,
    x,
    y,
    x_unlabelled,
    validation_data=None,
    *,
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
        model: a task model; its source stays frozen, as in `fit_head`.
        x, y: the labelled examples; `x_unlabelled`: unlabelled ones of the same kind.
        validation_data: `(x_val, y_val)` kept out of training; by default a
            stratified `validation_split` of `x, y`.
        rounds: pseudo-labelling rounds after the supervised one.
        threshold: the least softmax confidence a pseudo-label needs.
        pseudo_label_weight: a pseudo-labelled example's sample weight.
        solver, refit: of each round's head (see `fit_head` and above);
            `batch_size`, `learning_rate`: of its Adam training.

    Returns:
        a `SelfTrainingResult`; `model` holds the best round's head.

    >>> import numpy as np, tfxfer
    >>> texts = np.array(["rocket orbit launch", "god faith church"] * 20, dtype=object)
    >>> labels = np.array([0, 1] * 20)
    >>> model = tfxfer.TextClassifier.from_word_vectors(None, texts, 2, dim=4, encoder="hybrid")
    >>> result = tfxfer.self_train(model, texts[:8], labels[:8], texts[8:], (texts[8:16], labels[8:16]),
    ...                            rounds=2, progress=False, verbose=0)
    >>> result.history[0]["val_accuracy"]
    1.0
    """
    schedule = _Schedule.checked(rounds, threshold, pseudo_label_weight, verbose)
    task, y = contract(model), np.asarray(y)
    if validation_data is None:
        x = np.asarray(x, dtype=object) if isinstance(x, list) else x
        (x, y), validation_data = stratified_split(x, y, validation_split, seed)
    val_x, val_y = validation_data[0], np.asarray(validation_data[1])
    features, pool, val_features = (
        _in_memory(source_features(task, inputs, labels, batch_size, cache_dir, progress, adapt=False))
        for inputs, labels in ((x, y), (x_unlabelled, None), (val_x, val_y))
    )
    # Afresh, on the pool too: few labels give noisy statistics, and the
    # head is trained anew, maybe on a fine-tuned source's features.
    task.adapt_feature_scaling(stack_rows(features, pool), refresh=True)
    head = task.head_on_features(features)  # builds the head layers, so their start can be kept
    dense = linear_head(task) if solver == "auto" else None
    folds = stratified_folds(np.concatenate([y, val_y]), seed) if dense and is_small(val_y, dense.units) else None
    if folds:
        schedule.say(
            f"self_train: {len(val_y)} validation examples are too few to judge a round; each is judged by "
            f"{len(folds)}-fold cross-validation over the {len(y) + len(val_y)} labelled examples"
        )
        labelled, labels = stack_rows(features, val_features), np.concatenate([y, val_y])
        model_rows = np.arange(len(labels) if refit else len(y))  # what the model's own chain learns from
        outcome = _self_train_by_folds(head, dense, (labelled, labels), model_rows, pool, folds, schedule, seed)
    else:
        settings = {"batch_size": batch_size, "learning_rate": learning_rate, "solver": solver, "seed": seed}
        rounds_ = _ValidationRounds(task, head, pool, (val_features, val_y), settings)
        outcome = _self_train_on_validation(rounds_, features, y, schedule, refit and solver == "auto")
    history, best_round, best_pick = outcome
    task.ensure_compiled()
    if best_round == 0:
        schedule.say_supervised_kept(history, len(y) + len(val_y) if folds else len(val_y))
    return SelfTrainingResult(history, best_round, *best_pick)


class _ValidationRounds:
    """Trains the head afresh for a round and predicts the pool and the
    validation examples; a solved head's C is chosen in round 0 and kept."""

    def __init__(self, task, head, pool, validation, settings):
        self.task, self.head, self.pool, self.validation = task, head, pool, validation
        self.settings, self.svm_c, self.start = settings, "auto", head.get_weights()

    def train(self, features, labels, weights, refit=False):
        self.head.set_weights(self.start)  # each round trains afresh: earlier mistakes are not built on
        history = fit_head_on_features(
            self.task, features, labels, validation_data=self.validation, verbose=0, fresh_optimizer=True,
            refit=refit, svm_c=self.svm_c, sample_weight=weights, **self.settings,
        )  # fmt: skip
        self.svm_c = history.history.get("C", [self.svm_c])[0]
        batch_size = self.settings["batch_size"]
        return head_probabilities(self.head, self.pool, batch_size), head_probabilities(
            self.head, self.validation[0], batch_size
        )


def _self_train_on_validation(rounds, features, y, schedule, refit):
    """The rounds, each judged on the validation split."""
    head, pool, val_y = rounds.head, rounds.pool, rounds.validation[1]
    best_data = (features, y, schedule.sample_weights(len(y), 0))
    pool_probs, val_probs = rounds.train(*best_data)
    best = _round_record(0, 0, None, val_probs, val_y)
    history, best_weights, best_pick = [best], head.get_weights(), (np.zeros(0, int), np.zeros(0, int))
    schedule.say(f"self_train round 0 (labelled only): val accuracy {best['val_accuracy']:.4f}")
    classes, best_accuracy, margin = val_probs.shape[1], best["val_accuracy"], noise_margin(len(val_y))
    for round_ in range(1, schedule.rounds + 1):
        picked = confident_picks(pool_probs, schedule.share(round_, pool.shape[0], classes), schedule.threshold)
        judged = confident_picks(val_probs, schedule.share(round_, len(val_y), classes), schedule.threshold)
        precision = float(np.mean(val_probs[judged].argmax(1) == val_y[judged])) if len(judged) else None
        labels = pool_probs[picked].argmax(1)
        weights = schedule.sample_weights(len(y), len(picked))
        round_data = (stack_rows(features, pool[picked]), np.concatenate([y, labels]), weights)
        pool_probs, val_probs = rounds.train(*round_data)
        record = _round_record(round_, len(picked), precision, val_probs, val_y)
        history.append(record)
        schedule.say(f"self_train round {round_}: {_describe(record)}, val accuracy {record['val_accuracy']:.4f}")
        if record["val_accuracy"] < best_accuracy - margin:
            break  # this round hurt beyond noise: later, larger shares will not help either
        best_accuracy = max(best_accuracy, record["val_accuracy"])
        best, best_weights, best_pick, best_data = record, head.get_weights(), (picked, labels), round_data
    head.set_weights(best_weights)
    if refit:
        rounds.train(*best_data, refit=True)  # the validation examples join the chosen round's
    return history, best["round"], best_pick


def _self_train_by_folds(head, dense, labelled, model_rows, pool, folds, schedule, seed):
    """The rounds of a solved linear head, each judged by cross-validation:
    one self-training chain per fold, on the other folds' labelled examples
    and the pseudo-labels that chain's own head picks, predicts the fold; a
    round's accuracy is that of all those out-of-fold predictions. A last
    chain on the labelled examples `model_rows` (the training ones, or all
    with `refit`) gives the model its head."""
    inputs, pool_inputs = head_inputs(head, dense, labelled[0], pool)
    labels, units = labelled[1], dense.units
    c = cross_validated_c(inputs, labels, None, seed, units, folds)
    chains = [train for train, _ in folds] + [model_rows]

    def solve_chain(train, picked, pseudo_labels):
        rows = stack_rows(inputs[train], pool_inputs[picked])
        weights = schedule.sample_weights(len(train), len(picked))
        return solve(rows, np.concatenate([labels[train], pseudo_labels]), weights, c, seed, units)

    nothing = np.zeros(0, int)
    solved = [solve_chain(train, nothing, nothing) for train in chains]
    scores = fold_scores(inputs, folds, solved)
    scale = best_temperature(scores, labels)  # confidences for the picks, kept for every round
    history = [_round_record(0, 0, None, scores, labels)]
    best = (history[0], solved[-1], scores, (nothing, nothing))
    schedule.say(f"self_train round 0 (labelled only): cross-validated accuracy {history[0]['val_accuracy']:.4f}")
    best_accuracy, margin = history[0]["val_accuracy"], noise_margin(len(labels))
    for round_ in range(1, schedule.rounds + 1):
        quota = schedule.share(round_, pool.shape[0], units)
        judged = confident_picks(
            softmax(scale * scores), schedule.share(round_, len(labels), units), schedule.threshold
        )
        precision = float(np.mean(scores[judged].argmax(1) == labels[judged])) if len(judged) else None
        picks = []
        for kernel, bias in solved:
            probabilities = softmax(scale * (pool_inputs @ kernel + bias))
            picked = confident_picks(probabilities, quota, schedule.threshold)
            picks.append((picked, probabilities[picked].argmax(1)))
        solved = [solve_chain(train, *pick) for train, pick in zip(chains, picks)]
        scores = fold_scores(inputs, folds, solved)
        record = _round_record(round_, len(picks[-1][0]), precision, scores, labels)
        history.append(record)
        schedule.say(
            f"self_train round {round_}: {_describe(record)}, cross-validated accuracy {record['val_accuracy']:.4f}"
        )
        if record["val_accuracy"] < best_accuracy - margin:
            break  # as on a validation split
        best_accuracy = max(best_accuracy, record["val_accuracy"])
        best = (record, solved[-1], scores, picks[-1])
    record, (kernel, bias), scores, pick = best
    scale = best_temperature(scores, labels)
    dense.set_weights([scale * kernel, scale * bias])
    return history, record["round"], pick


def _describe(record):
    precision = record["precision"]
    return (
        f"{record['pseudo_labels']} pseudo-labels (estimated precision "
        f"{'n/a' if precision is None else f'{precision:.3f}'})"
    )


def _in_memory(features):
    """Cached features read into memory (sparse ones stay sparse)."""
    return features if scipy.sparse.issparse(features) else np.asarray(features)


def confident_picks(probabilities, quota, threshold):
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
