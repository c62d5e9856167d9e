"""Negative-transfer checks: rank sources before training, compare after.

- `logme(features, labels)`: LogME (You et al., 2021), the log marginal
  evidence per sample of a Bayesian linear model from the source's features
  to each one-hot label column, its prior and noise precisions fitted by
  evidence maximisation. Higher means the features fit the labels better; it
  needs only cached features (no training), so candidate sources can be
  ranked on the target data first.
- `transfer_report(...)`: a transferred model's score beside from-scratch
  and linear-probe scores on the same budget, with a warning when transfer
  loses to training from scratch.
"""

import dataclasses
import warnings

import numpy as np


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
