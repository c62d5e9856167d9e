"""Transfer strategies: staged fine-tuning, per-group learning rates."""

from tfxfer.transfer.fine_tune import block_groups, fine_tune, set_batchnorm, unfreeze_top
from tfxfer.transfer.optimizers import SGD, Adam, AdamW, warmup_cosine
