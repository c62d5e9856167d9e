"""Methods of the transfer-learning literature as Keras 3 building blocks.

`importance` (instance-based: importance weights), `boosting` (TrAdaBoost), `alignment`
(feature-based: gradient reversal / DANN, CORAL, MMD), `regularization`
(model-based: L2-SP, BSS, DELTA's feature-map distance), `distillation` (teacher -> student),
`transferability` (LogME, H-score, LEEP, NCE, ranking sources, negative-transfer report).
"""

from tfxfer.methods.alignment import (
    DomainAdversarial,
    FeatureAlignment,
    GradientReversal,
    GradientReversalSchedule,
    coral_loss,
    mmd_loss,
)
from tfxfer.methods.boosting import TrAdaBoost
from tfxfer.methods.distillation import distill
from tfxfer.methods.importance import ImportanceWeights, domain_classifier_weights, kernel_mean_matching
from tfxfer.methods.regularization import FeatureMapDistance, SourceAnchor, SpectralShrinkage
from tfxfer.methods.transferability import (
    SCORES,
    TransferReport,
    h_score,
    leep,
    logme,
    nce,
    rank_sources,
    transfer_report,
)

__all__ = [
    "SCORES",
    "DomainAdversarial",
    "FeatureAlignment",
    "FeatureMapDistance",
    "GradientReversal",
    "GradientReversalSchedule",
    "ImportanceWeights",
    "SourceAnchor",
    "SpectralShrinkage",
    "TrAdaBoost",
    "TransferReport",
    "coral_loss",
    "distill",
    "domain_classifier_weights",
    "h_score",
    "kernel_mean_matching",
    "leep",
    "logme",
    "mmd_loss",
    "nce",
    "rank_sources",
    "transfer_report",
]
