"""Negative-transfer checks: rank sources before training, compare after.

- `logme(features, labels)`: LogME (You et al., 2021), the log marginal
  evidence per sample of a Bayesian linear model from the source's features
  to each one-hot label column, its prior and noise precisions fitted by
  evidence maximisation. Higher means the features fit the labels better; it
  needs only cached features (no training), so candidate sources can be
  ranked on the target data first.
- `h_score(features, labels)`: H-score (Bao et al., 2019), how much of
  the features' (whitened) variance the class means explain, with the
  covariance shrunk (Ledoit-Wolf), as Ibrahim et al. (2022) advise.
- `leep(source_probabilities, labels)`: LEEP (Nguyen et al., 2020), the
  log-likelihood of the labels under the source classifier's outputs mapped
  to the target classes by their empirical joint distribution; `nce(...)`:
  NCE (Tran et al., 2019), the negative conditional entropy of the labels
  given the source's hard predictions. Both need a source that classifies;
  `rank_sources` gives a feature extractor's features "classes" from a
  Gaussian mixture first (N-LEEP, Li et al., 2021).
- `rank_sources({name: source}, x, y)`: every score for every candidate,
  ranked.
- `transfer_report(...)`: a transferred model's score beside from-scratch
  and linear-probe scores on the same budget, with a warning when transfer
  loses to training from scratch.
"""

import dataclasses
import warnings

import numpy as np

from tfxfer.validation import check_choice


def _evidence(values, projected, target, n, max_iterations=100, tolerance=1e-3):
    """Evidence per sample of y = F w + noise for one target column.

    `values`, `projected`: eigenvalues s of F'F and V'F'y in its eigenbasis.
    """
    dim = len(values)
    alpha, beta = 1.0, 1.0
    target_sq = float(target @ target)
    for _ in range(max_iterations):
        # Posterior mean in the eigenbasis, and its fit.
        mean = beta * projected / (alpha + beta * values)
        mean_sq = float(mean @ mean)
        # ||y - F m||^2 = y'y - 2 m'V'F'y + m' diag(s) m, all in the eigenbasis.
        residual_sq = max(target_sq - 2 * float(mean @ projected) + float(values @ (mean * mean)), 1e-12)
        effective = float((beta * values / (alpha + beta * values)).sum())
        new_alpha = effective / max(mean_sq, 1e-12)
        new_beta = max(n - effective, 1e-12) / residual_sq
        converged = abs(new_alpha / new_beta - alpha / beta) <= tolerance * alpha / beta
        alpha, beta = new_alpha, new_beta
        if converged:
            break
    mean = beta * projected / (alpha + beta * values)
    residual_sq = max(target_sq - 2 * float(mean @ projected) + float(values @ (mean * mean)), 1e-12)
    evidence = (
        dim / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - n / 2 * np.log(2 * np.pi)
        - beta / 2 * residual_sq
        - alpha / 2 * float(mean @ mean)
        - 0.5 * float(np.log(alpha + beta * values).sum())
    )
    return evidence / n


def logme(features, labels):
    """LogME of `features` (n, d) for integer `labels` (n,): mean over classes
    of the per-sample log evidence. Comparable between sources on the same
    target data; higher is better.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 3, 200)
    >>> useful = np.eye(3)[labels] + 0.3 * rng.normal(size=(200, 3))
    >>> useless = rng.normal(size=(200, 3))
    >>> bool(logme(useful, labels) > logme(useless, labels))
    True
    """
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    labels = np.asarray(labels).reshape(-1)
    if len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels: they must match one to one.")
    values, vectors = np.linalg.eigh(features.T @ features)
    values = np.maximum(values, 0.0)
    classes = np.unique(labels)
    scores = []
    for label in classes:
        target = (labels == label).astype(np.float64)
        projected = vectors.T @ (features.T @ target)
        scores.append(_evidence(values, projected, target, len(features)))
    return float(np.mean(scores))


def _checked_pair(values, labels, what):
    values = np.asarray(values, dtype=np.float64)
    values = values.reshape(len(values), -1)
    labels = np.asarray(labels).reshape(-1)
    if len(values) != len(labels):
        raise ValueError(f"{len(values)} rows of {what} but {len(labels)} labels: they must match one to one.")
    return values, labels


def h_score(features, labels):
    """H-score of `features` (n, d) for integer `labels`: the trace of
    cov(f)^-1 cov(E[f | y]), cov(f) shrunk by Ledoit-Wolf. Higher is better;
    at most the number of classes minus one.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 3, 300)
    >>> useful = np.eye(3)[labels] + 0.3 * rng.normal(size=(300, 3))
    >>> round(h_score(useful, labels), 1), round(h_score(rng.normal(size=(300, 3)), labels), 2)
    (1.6, 0.02)
    """
    from sklearn.covariance import LedoitWolf

    features, labels = _checked_pair(features, labels, "features")
    centred = features - features.mean(0)
    classes, index = np.unique(labels, return_inverse=True)
    means = np.stack([centred[index == k].mean(0) for k in range(len(classes))])[index]
    covariance = LedoitWolf().fit(centred).covariance_
    between = means.T @ means / len(means)
    return float(np.trace(np.linalg.lstsq(covariance, between, rcond=None)[0]))


def _source_conditional(source_probabilities, labels):
    """P(y | z): the target labels given the source's classes, from their empirical joint."""
    classes, index = np.unique(labels, return_inverse=True)
    joint = np.eye(len(classes))[index].T @ source_probabilities / len(labels)  # (target, source)
    return joint / np.maximum(joint.sum(0, keepdims=True), 1e-12), index


def _checked_probabilities(source_probabilities, labels):
    theta, labels = _checked_pair(source_probabilities, labels, "source probabilities")
    if (theta < 0).any() or not np.allclose(theta.sum(1), 1.0, atol=1e-3):
        raise ValueError(
            "source_probabilities must be the source classifier's softmax outputs: rows of non-negative values "
            "summing to 1 (apply keras.ops.softmax to logits first)."
        )
    return theta, labels


def leep(source_probabilities, labels):
    """LEEP: the mean log-probability of each label under the source's
    outputs `source_probabilities` (n, source classes), mapped to the target
    classes by P(y | z). At most 0; higher is better.

    Example:

    >>> import numpy as np
    >>> labels = np.array([0, 0, 1, 1])
    >>> sharp = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]])
    >>> bool(leep(sharp, labels) > leep(np.full((4, 2), 0.5), labels))
    True
    """
    theta, labels = _checked_probabilities(source_probabilities, labels)
    conditional, index = _source_conditional(theta, labels)
    expected = theta @ conditional.T  # (n, target classes)
    return float(np.mean(np.log(np.maximum(expected[np.arange(len(index)), index], 1e-12))))


def nce(source_probabilities, labels):
    """NCE: -H(Y | Z), the labels' entropy left once the source's hard
    prediction z = argmax is known (probabilities or integer predictions).
    At most 0; higher is better."""
    values = np.asarray(source_probabilities)
    hard = values.reshape(-1).astype(int) if values.ndim == 1 else values.argmax(1)
    hard, labels = _checked_pair(hard, labels, "source predictions")
    _, source_index = np.unique(hard[:, 0], return_inverse=True)
    conditional, index = _source_conditional(np.eye(source_index.max() + 1)[source_index], labels)
    return float(np.mean(np.log(np.maximum(conditional[index, source_index], 1e-12))))


def mixture_probabilities(features, components, seed=0):
    """Soft "source classes" of a feature extractor for LEEP and NCE
    (N-LEEP): a diagonal Gaussian mixture of `components` on the features
    reduced by PCA to the components that hold 80 % of their variance."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    reduced = PCA(n_components=0.8, svd_solver="full", random_state=seed).fit_transform(features)
    mixture = GaussianMixture(components, covariance_type="diag", random_state=seed, reg_covar=1e-4)
    return mixture.fit(reduced).predict_proba(reduced)


SCORES = ("logme", "h_score", "leep", "nce")


def rank_sources(sources, x, y, by="logme", batch_size=64, cache_dir=None, seed=0, progress=False):
    """Scores each candidate source on the target data `x, y`, best first.

    Args:
        sources: `{name: source}`, each a Keras layer or model mapping `x`
            to features (an `ImageBackbone`, a `HubFeatures`, a user's model),
            or an array of its features for `x` already computed.
        x, y: target inputs and integer labels (a few hundred suffice).
        by: the score that orders the result, one of `SCORES`.

    Returns:
        a list of dicts `{"source", "logme", "h_score", "leep", "nce"}`,
        ordered by `by`, highest first. LEEP and NCE score the features'
        Gaussian-mixture "classes" (`mixture_probabilities`, as many as
        the target has classes).

    Example:

    >>> import keras, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200)
    >>> x = (y[:, None] + 0.5 * rng.normal(size=(200, 4))).astype("float32")
    >>> ranking = rank_sources({"keeps the signal": x, "noise": rng.normal(size=(200, 4))}, x, y)
    >>> [row["source"] for row in ranking]
    ['keeps the signal', 'noise']
    """
    from tfxfer.transfer.feature_cache import extract_features

    check_choice("by", by, SCORES)
    y = np.asarray(y).reshape(-1)
    rows = []
    for name, source in sources.items():
        if isinstance(source, np.ndarray):
            features = source
        else:
            features = np.asarray(extract_features(source, x, batch_size, cache_dir, progress)[0])
        features = features.reshape(len(features), -1)
        if len(features) != len(y):
            raise ValueError(f"source {name!r}: {len(features)} feature rows for {len(y)} labels.")
        mixture = mixture_probabilities(features, len(np.unique(y)), seed)
        rows.append(
            {
                "source": name,
                "logme": logme(features, y),
                "h_score": h_score(features, y),
                "leep": leep(mixture, y),
                "nce": nce(mixture, y),
            }
        )
    return sorted(rows, key=lambda row: -row[by])


@dataclasses.dataclass(frozen=True)
class TransferReport:
    """Scores (higher is better, e.g. accuracy) of the strategies on one budget."""

    transferred: float
    scratch: float
    linear_probe: float | None = None

    @property
    def negative_transfer(self):
        return self.transferred < self.scratch

    def __str__(self):
        lines = [f"transferred  {self.transferred:.4f}", f"from scratch {self.scratch:.4f}"]
        if self.linear_probe is not None:
            lines.append(f"linear probe {self.linear_probe:.4f}")
        verdict = (
            "NEGATIVE TRANSFER: the source hurts; train from scratch or pick another source"
            if self.negative_transfer
            else f"transfer gains {self.transferred - self.scratch:+.4f}"
        )
        return "\n".join([*lines, verdict])


def transfer_report(transferred, scratch, linear_probe=None):
    """A `TransferReport`; warns (`UserWarning`) when transfer loses to scratch."""
    report = TransferReport(float(transferred), float(scratch), None if linear_probe is None else float(linear_probe))
    if report.negative_transfer:
        warnings.warn(
            f"Negative transfer: the transferred model scores {report.transferred:.4f}, below "
            f"{report.scratch:.4f} from scratch on the same budget. Try another source, unfreeze "
            "more of it, or train from scratch.",
            UserWarning,
            stacklevel=2,
        )
    return report
