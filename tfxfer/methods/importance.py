"""Instance-based transfer: importance weights w(x) = p_target(x) / p_source(x).

Source samples that look like the target count more in training. Two
estimators: a probabilistic domain classifier (out-of-fold probabilities,
so a sample's own label does not leak into its weight), and kernel mean
matching (weights that match the source's kernel mean to the target's).
Both return an `ImportanceWeights` whose `weights` go straight to
`fit(sample_weight=...)` or into a tf.data pipeline as the third element.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ImportanceWeights:
    """Weights of the source samples, normalised to mean 1.

    `effective_sample_size`: (sum w)^2 / sum w^2, how many unweighted
    samples the weighted set is worth; far below `len(weights)` means a few
    samples dominate and the estimate is fragile.
    """

    weights: np.ndarray

    @property
    def effective_sample_size(self):
        return float(self.weights.sum() ** 2 / np.square(self.weights).sum())

    def __str__(self):
        return (
            f"{len(self.weights)} importance weights, range {self.weights.min():.3g}-"
            f"{self.weights.max():.3g}, effective sample size {self.effective_sample_size:.0f}"
        )


def _as_features(x, name):
    array = np.asarray(x, dtype=np.float64)
    if array.ndim < 2 or len(array) < 2:
        raise ValueError(f"{name} must hold at least 2 samples of features (n, ...). Received: shape {array.shape}")
    return array.reshape(len(array), -1)


def _normalised(weights, clip):
    weights = np.minimum(weights, clip * np.mean(weights)) if clip else weights
    return ImportanceWeights((weights / weights.mean()).astype(np.float32))


def domain_classifier_weights(source, target, classifier=None, clip=20.0, folds=5, seed=0):
    """w = P(target | x) / P(source | x) * n_source / n_target, from a classifier.

    Args:
        source, target: features (n, ...) of the two domains, e.g. cached
            source-model features.
        classifier: a scikit-learn classifier with `predict_proba`; default
            a standardized logistic regression.
        clip: no weight above `clip` times the mean (None: no clipping).
        folds: out-of-fold probabilities for the source samples.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> source, target = rng.normal(0, 1, (200, 2)), rng.normal(1, 1, (200, 2))
    >>> estimate = domain_classifier_weights(source, target)
    >>> # Source points that lie towards the target weigh more.
    >>> bool(estimate.weights[source.sum(1) > 1].mean() > estimate.weights[source.sum(1) < -1].mean())
    True
    >>> round(float(estimate.weights.mean()), 3)
    1.0
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    source, target = _as_features(source, "source"), _as_features(target, "target")
    if source.shape[1] != target.shape[1]:
        raise ValueError(
            f"source has {source.shape[1]} features per sample and target {target.shape[1]}: they must match."
        )
    classifier = classifier or make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    x = np.concatenate([source, target])
    domain = np.r_[np.zeros(len(source)), np.ones(len(target))]
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    p_target = cross_val_predict(classifier, x, domain, cv=splitter, method="predict_proba")[: len(source), 1]
    p_target = np.clip(p_target, 1e-6, 1 - 1e-6)
    return _normalised(p_target / (1 - p_target) * len(source) / len(target), clip)


def kernel_mean_matching(source, target, gamma=None, bound=20.0, epsilon=None, ridge=1.0):
    """Weights that match the source's kernel mean to the target's (Huang et al., 2007).

    Solves min_b 1/2 b'(K + ridge I)b - k'b with 0 <= b <= `bound` and
    |sum b - n_s| <= n_s * epsilon, K the RBF kernel on the source and
    k_i = n_s/n_t sum_j k(x_i, t_j). `gamma` defaults to the median
    heuristic; `epsilon` to (sqrt(n_s) - 1) / sqrt(n_s). The ridge keeps
    the solution spread over the samples: without it (ridge=0, the paper's
    form) K is nearly singular and the optimum puts all weight on a few
    points (on two unit Gaussians one apart, rank correlation with the true
    ratio 0.18 without, 0.98 with). Memory is O(n_source^2): subsample
    beyond a few thousand samples.
    """
    from scipy.optimize import minimize
    from sklearn.metrics.pairwise import euclidean_distances, rbf_kernel

    source, target = _as_features(source, "source"), _as_features(target, "target")
    n_s, n_t = len(source), len(target)
    if gamma is None:
        sample = np.concatenate([source, target])[:1000]
        squared = euclidean_distances(sample, squared=True)
        gamma = 1.0 / max(np.median(squared[squared > 0]), 1e-12)
    epsilon = (np.sqrt(n_s) - 1) / np.sqrt(n_s) if epsilon is None else epsilon
    kernel = rbf_kernel(source, source, gamma=gamma) + ridge * np.eye(n_s)
    kappa = n_s / n_t * rbf_kernel(source, target, gamma=gamma).sum(1)
    constraints = [
        {"type": "ineq", "fun": lambda b: n_s * (1 + epsilon) - b.sum(), "jac": lambda b: -np.ones_like(b)},
        {"type": "ineq", "fun": lambda b: b.sum() - n_s * (1 - epsilon), "jac": lambda b: np.ones_like(b)},
    ]
    result = minimize(
        lambda b: 0.5 * b @ kernel @ b - kappa @ b,
        np.ones(n_s),
        jac=lambda b: kernel @ b - kappa,
        bounds=[(0.0, bound)] * n_s,
        constraints=constraints,
        method="SLSQP",
        options={"maxiter": 500},
    )
    return _normalised(np.maximum(result.x, 0) + 1e-12, clip=None)
