"""Transfer strategies: feature extraction on cached features, staged
fine-tuning, self-training and FixMatch on unlabelled data, and the
primitives they are made of (block groups, the BatchNorm switch, optimizers
with per-group learning rates, how long a stage runs); parameter and
structure transfer between a user's own Keras models."""

from tfxfer.transfer.budget import MIN_STEPS, stage_plan
from tfxfer.transfer.consistency import FixMatchTrainer, fixmatch_dataset
from tfxfer.transfer.feature_cache import extract_features, fit_head
from tfxfer.transfer.fine_tuning import block_groups, fine_tune, set_batchnorm, unfreeze_top
from tfxfer.transfer.optimizers import SGD, Adam, AdamW, warmup_cosine
from tfxfer.transfer.self_training import SelfTrainingResult, self_train
from tfxfer.transfer.structure import clone_structure
from tfxfer.transfer.weights import WeightTransfer, transfer_weights

__all__ = [
    "MIN_STEPS",
    "SGD",
    "FixMatchTrainer",
    "Adam",
    "AdamW",
    "SelfTrainingResult",
    "WeightTransfer",
    "block_groups",
    "clone_structure",
    "extract_features",
    "fine_tune",
    "fit_head",
    "fixmatch_dataset",
    "self_train",
    "set_batchnorm",
    "stage_plan",
    "transfer_weights",
    "unfreeze_top",
    "warmup_cosine",
]
