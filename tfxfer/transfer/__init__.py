"""Transfer strategies: feature extraction on cached features, staged
fine-tuning, self-training and FixMatch on unlabelled data, and the
primitives they are made of (block groups, the BatchNorm switch, optimizers
with per-group learning rates, how long a stage runs)."""

from tfxfer.transfer.budget import MIN_STEPS, stage_plan
from tfxfer.transfer.consistency import FixMatchTrainer, fixmatch_dataset
from tfxfer.transfer.feature_cache import extract_features, fit_head
from tfxfer.transfer.fine_tuning import block_groups, fine_tune, set_batchnorm, unfreeze_top
from tfxfer.transfer.optimizers import SGD, Adam, AdamW, warmup_cosine
from tfxfer.transfer.self_training import SelfTrainingResult, self_train

__all__ = [
    "MIN_STEPS",
    "SGD",
    "FixMatchTrainer",
    "Adam",
    "AdamW",
    "SelfTrainingResult",
    "block_groups",
    "extract_features",
    "fine_tune",
    "fit_head",
    "fixmatch_dataset",
    "self_train",
    "set_batchnorm",
    "stage_plan",
    "unfreeze_top",
    "warmup_cosine",
]
