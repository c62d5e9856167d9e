"""Transfer strategies: feature extraction on cached features, staged
fine-tuning, self-training and FixMatch on unlabelled data, contrastive
(SetFit) fine-tuning of a sentence encoder on few labels, and the
primitives they are made of (one training stage, block groups, the BatchNorm
switch, optimizers with per-group learning rates, how long a stage runs);
parameter and structure transfer between a user's own Keras models.

`Transferable` is what they ask of a model (`tfxfer.Task` implements it).
"""

from tfxfer.transfer.budget import MIN_STEPS, noise_margin, stage_plan
from tfxfer.transfer.consistency import FixMatchTrainer, fixmatch_dataset, fixmatch_fine_tune
from tfxfer.transfer.contract import Transferable
from tfxfer.transfer.contrastive import PairSimilarityTrainer, auto_iterations, contrastive_fine_tune, contrastive_pairs
from tfxfer.transfer.feature_cache import extract_features
from tfxfer.transfer.fine_tuning import block_groups, fine_tune, group_rate_multipliers, set_batchnorm, unfreeze_top
from tfxfer.transfer.head import fit_head
from tfxfer.transfer.optimizers import SGD, Adam, AdamW, warmup_cosine
from tfxfer.transfer.self_training import SelfTrainingResult, confident_picks, self_train
from tfxfer.transfer.stages import fit_stage
from tfxfer.transfer.structure import clone_structure
from tfxfer.transfer.weights import WeightTransfer, transfer_weights

__all__ = [
    "MIN_STEPS",
    "SGD",
    "Adam",
    "AdamW",
    "FixMatchTrainer",
    "PairSimilarityTrainer",
    "SelfTrainingResult",
    "Transferable",
    "WeightTransfer",
    "auto_iterations",
    "block_groups",
    "clone_structure",
    "confident_picks",
    "contrastive_fine_tune",
    "contrastive_pairs",
    "extract_features",
    "fine_tune",
    "fit_head",
    "fit_stage",
    "fixmatch_dataset",
    "fixmatch_fine_tune",
    "group_rate_multipliers",
    "noise_margin",
    "self_train",
    "set_batchnorm",
    "stage_plan",
    "transfer_weights",
    "unfreeze_top",
    "warmup_cosine",
]
