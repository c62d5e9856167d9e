"""Staged fine-tuning: warm the head up, then unfreeze the top of the source.

The fastai recipe for Keras 3: `fine_tune(model, x, y, epochs=...)` trains
the new head with the source frozen, then unfreezes the top `unfreeze`
block groups and trains them with smaller, per-group learning rates (the
update is scaled, which is right for Adam), BatchNorm kept in inference mode
unless asked otherwise, under a warm-up + cosine schedule. With a
`checkpoint_dir`, an interrupted run resumes where it stopped when called
again with the same arguments.
"""

import collections
import functools

import keras

from tfxfer.choices import BN_POLICIES
from tfxfer.log import logger
from tfxfer.sources.hub import HubFeatures
from tfxfer.transfer.contract import contract
from tfxfer.transfer.stages import fit_stage
from tfxfer.validation import check_choice
from tfxfer.walk import walk_layers


def block_groups(source):
    """The source's named groups of layers, bottom to top."""
    if hasattr(source, "block_groups"):  # ImageBackbone
        return source.block_groups
    if isinstance(source, keras.Model):
        return collections.OrderedDict((layer.name, [layer]) for layer in source.layers if layer.weights)
    return collections.OrderedDict([(source.name, [source])])  # HubFeatures: one opaque group


def set_batchnorm(source, bn):
    """`"frozen"`: BatchNorm runs in inference mode and keeps its statistics.

    Keras BatchNormalization layers are made non-trainable (their Keras
    meaning: inference mode, statistics and scale/offset fixed); HubFeatures
    modules are called with `training=False`. `"train"`: BatchNorm follows
    the trainability of its group and updates its statistics.
    """
    check_choice("bn", bn, BN_POLICIES)
    for layer in walk_layers(source):
        if isinstance(layer, HubFeatures):
            layer.bn = bn
        elif isinstance(layer, keras.layers.BatchNormalization) and bn == "frozen":
            layer.trainable = False


def unfreeze_top(source, num_groups, bn="frozen"):
    """Makes only the top `num_groups` groups of `source` trainable.

    Args:
        source: the pretrained source (ImageBackbone, HubFeatures, a Keras model).
        num_groups: how many groups, counted from the top; `"all"` for all,
            0 to freeze the source. More than the source has means all
            (with a one-line notice).
        bn: the BatchNorm policy, see `set_batchnorm`.

    Returns:
        The names of the trainable groups, bottom to top.
    """
    groups = block_groups(source)
    names = list(groups)
    count = len(names) if num_groups == "all" else num_groups
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(
            f"num_groups must be 'all' or an integer from 0 (the groups are {names}). "
            f"Received: num_groups={num_groups!r}"
        )
    if count > len(names):
        logger.warning(
            f"unfreeze={count}: the source has {len(names)} block group(s) ({', '.join(names)}); "
            f"unfreezing all {len(names)}."
        )
        count = len(names)
    top = names[len(names) - count :]
    # Every container on, each layer explicitly: a frozen container would hide
    # its layers' weights, and Keras skips assigning a flag it already holds.
    for layer in walk_layers(source):
        layer.trainable = True
    for name, layers in groups.items():
        for layer in layers:
            layer.trainable = name in top
    if not top:
        source.trainable = False
    set_batchnorm(source, bn)
    return top


def group_rate_multipliers(source, groups, source_rate=0.1, group_decay=1.0):
    """`{variable path: multiplier}` for the trainable variables of `groups`.

    The top group gets `source_rate`; each group below gets `group_decay`
    times the one above (discriminative rates). Variables not listed (the
    head) keep the base rate.
    """
    all_groups = block_groups(source)
    multipliers = {}
    for depth, name in enumerate(reversed(groups)):
        factor = source_rate * group_decay**depth
        for layer in all_groups[name]:
            for variable in layer.trainable_weights:
                multipliers[variable.path] = factor
    return multipliers


def fine_tune(
    model,
    x,
    y=None,
    *,
    epochs="auto",
    warmup_epochs="auto",
    unfreeze="all",
    learning_rate="auto",
    source_rate="auto",
    group_decay=1.0,
    bn="frozen",
    checkpoint_dir=None,
    **stage_kwargs,
):
    """Head warm-up with the source frozen, then staged fine-tuning: two `fit_stage`s.

    Args:
        model, x, y: a task model with `.backbone`; training data as for `fit`.
        epochs: of fine-tuning; `"auto"`: sized to the data (at least
            `min_steps` optimizer steps and 5 epochs, `budget`); 0 skips it.
        warmup_epochs: of the head warm-up, `"auto"` (2 at least) or 0.
        unfreeze: the source's top block groups to train, or `"all"`.
        learning_rate: peak rate of the head; `"auto"`: the model's
            `fine_tuning_rates()` (1e-3; 1e-2 for word vectors).
        source_rate: multiplier of the top unfrozen group's rate (`"auto"`:
            0.1; 1.0 for word vectors); each group below: `group_decay` times more.
        bn: `"frozen"` (default) or `"train"`, see `set_batchnorm`.
        checkpoint_dir: per-epoch backups; a rerun resumes where it stopped.
        stage_kwargs: for both stages, see `fit_stage` (`validation_data`,
            `batch_size`, `callbacks`, `optimizer`, `trainer`, `fit`'s own...).

    Returns `{"warmup": History, "fine_tune": History}` (None: skipped, or finished before).
    """
    default_rate, default_source_rate = contract(model).fine_tuning_rates()
    rate = default_rate if learning_rate == "auto" else learning_rate
    source_rate = default_source_rate if source_rate == "auto" else source_rate
    stage = functools.partial(fit_stage, model, x, y, learning_rate=rate, checkpoint_dir=checkpoint_dir, **stage_kwargs)
    histories = {"warmup": None, "fine_tune": None}
    if warmup_epochs:
        unfreeze_top(model.backbone, 0, bn)
        histories["warmup"] = stage(name="warmup", epochs=warmup_epochs)
    groups = unfreeze_top(model.backbone, unfreeze, bn)
    if epochs:
        multipliers = group_rate_multipliers(model.backbone, groups, source_rate, group_decay)
        histories["fine_tune"] = stage(name="fine_tune", epochs=epochs, rate_multipliers=multipliers)
    return histories
