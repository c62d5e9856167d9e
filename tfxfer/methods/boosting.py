"""TrAdaBoost (Dai et al., 2007): instance transfer by boosting over the
labelled source examples and a few labelled target examples.

Each round fits a classifier on both, weighted. A target example it gets
wrong gains weight (as in AdaBoost); a source example it gets wrong loses
weight: the target's disagreement marks it as a different distribution.
The prediction is the weighted vote of the second half of the rounds.
Multi-class as SAMME extends AdaBoost (a round counts while it beats a
guess), and each domain starts with half the weight.
"""

import math

import numpy as np


class TrAdaBoost:
    """A scikit-learn style classifier trained on source and target examples.

    Args:
        estimator: a scikit-learn classifier that takes `sample_weight`
            (cloned each round); default `LogisticRegression(max_iter=1000)`.
        n_estimators: boosting rounds; the vote uses the last half.

    Example:

    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> x_source = rng.normal(size=(200, 2)); y_source = (x_source[:, 0] > 0).astype(int)
    >>> x_target = rng.normal(size=(60, 2)); y_target = (x_target[:, 1] > 0).astype(int)  # another rule
    >>> booster = TrAdaBoost(n_estimators=20).fit(x_source, y_source, x_target[:20], y_target[:20])
    >>> source_only = LogisticRegression().fit(x_source, y_source)
    >>> booster.score(x_target[20:], y_target[20:]), source_only.score(x_target[20:], y_target[20:])
    (0.975, 0.55)
    """

    def __init__(self, estimator=None, n_estimators=10):
        if int(n_estimators) < 2:
            raise ValueError(f"n_estimators must be at least 2 (the vote uses the last half). Received: {n_estimators}")
        self.estimator, self.n_estimators = estimator, int(n_estimators)

    def fit(self, x_source, y_source, x_target, y_target):
        """Boosts over the source examples and the labelled target ones."""
        from sklearn.base import clone
        from sklearn.linear_model import LogisticRegression

        x_source, x_target = _rows(x_source), _rows(x_target)
        y_source, y_target = np.asarray(y_source).reshape(-1), np.asarray(y_target).reshape(-1)
        if len(x_source) != len(y_source) or len(x_target) != len(y_target) or not len(y_target):
            raise ValueError(
                f"TrAdaBoost.fit needs matching rows and labels, with target examples: source {len(x_source)} rows, "
                f"{len(y_source)} labels; target {len(x_target)} rows, {len(y_target)} labels."
            )
        x, y = np.concatenate([x_source, x_target]), np.concatenate([y_source, y_target])
        n_source = len(y_source)
        self.classes_ = np.unique(y)
        # Each domain starts with half the weight, so that a few target examples are heard at all.
        weights = np.concatenate([np.full(n_source, 0.5 / n_source), np.full(len(y_target), 0.5 / len(y_target))])
        source_beta = 1.0 / (1.0 + math.sqrt(2.0 * math.log(n_source) / self.n_estimators)) if n_source > 1 else 1.0
        chance = 1.0 - 1.0 / max(len(self.classes_), 2)  # a guess's error: 1/2 for two classes
        self.estimators_, self.log_betas_ = [], []
        for _ in range(self.n_estimators):
            weights = weights / weights.sum()
            estimator = clone(self.estimator or LogisticRegression(max_iter=1000))
            estimator.fit(x, y, sample_weight=weights * len(y))
            wrong = estimator.predict(x) != y
            target_weights = weights[n_source:]
            error = min(max(float(target_weights[wrong[n_source:]].sum() / target_weights.sum()), 1e-10), chance - 1e-6)
            # ln(1/beta) of the paper, plus ln(K - 1) for K classes (SAMME): positive while better than a guess.
            log_beta = math.log((1.0 - error) / error) + math.log(max(len(self.classes_) - 1, 1))
            weights[:n_source] *= source_beta ** wrong[:n_source]
            weights[n_source:] *= np.exp(log_beta * wrong[n_source:])
            self.estimators_.append(estimator)
            self.log_betas_.append(log_beta)
        self.source_weight_share_ = float(weights[:n_source].sum() / weights.sum())
        return self

    def decision_function(self, x):
        """Per class, the vote of the last half of the rounds, each weighted by its ln(1 / beta)."""
        x, half = _rows(x), self.n_estimators // 2
        votes = np.zeros((len(x), len(self.classes_)))
        for estimator, weight in zip(self.estimators_[half:], self.log_betas_[half:]):
            votes[np.arange(len(x)), np.searchsorted(self.classes_, estimator.predict(x))] += weight
        return votes

    def predict(self, x):
        return self.classes_[self.decision_function(x).argmax(1)]

    def score(self, x, y):
        return float(np.mean(self.predict(x) == np.asarray(y).reshape(-1)))


def _rows(x):
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), int(np.prod(x.shape[1:])))
