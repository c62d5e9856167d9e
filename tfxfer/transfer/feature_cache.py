"""Feature extraction with an on-disk cache.

With the source frozen and nothing random before it, the source's output for
an image never changes: computing it once and training the head on the
stored features gives the same head for a fraction of the cost. Features are
written batch by batch into a memory-mapped `.npy` under a temporary name
and renamed when complete, so an interrupted extraction (or a full disk)
never leaves a cache file that looks valid.
"""

import hashlib
import json
import os

import keras
import numpy as np
import tqdm

from tfxfer.distribute import MultiWorkerFit
from tfxfer.sources.text_encoding import as_model_inputs
from tfxfer.transfer.budget import MIN_STEPS, stage_plan
from tfxfer.transfer.fine_tuning import kept_compile_arguments, source_outputs
from tfxfer.transfer.optimizers import warmup_cosine


def default_cache_dir():
    """`$TFXFER_CACHE`, else `$XDG_CACHE_HOME/tfxfer` (`~/.cache/tfxfer`), `/features`."""
    if "TFXFER_CACHE" in os.environ:
        return os.environ["TFXFER_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    return os.path.join(base, "tfxfer", "features")


def cache_key(source, inputs):
    """Digest of what the features depend on: the source's class, config
    (architecture, preprocessing, input size, vocabulary) and weights, the
    dtype policy, and the inputs themselves (images or texts)."""
    digest = hashlib.sha256()
    config = {"class": type(source).__name__, "config": source.get_config(), "dtype": str(source.dtype_policy.name)}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for weight in source.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    if inputs.dtype == object:  # texts: their bytes, each length-prefixed
        for text in inputs:
            data = text.encode() if isinstance(text, str) else bytes(text)
            digest.update(len(data).to_bytes(8, "little") + data)
    else:
        inputs = np.ascontiguousarray(inputs)
        digest.update(f"{inputs.shape}{inputs.dtype}".encode())
        digest.update(inputs.tobytes())
    return digest.hexdigest()[:32]


def extract_features(source, inputs, batch_size=64, cache_dir=None, progress=True):
    """The source's features for `inputs` (images or texts), from the cache
    or computed once.

    Returns:
        `(features, hit)`: a read-only memory-mapped array, and whether it
        came from the cache.
    """
    inputs = as_model_inputs(inputs)
    inputs = inputs if isinstance(inputs, np.ndarray) else np.asarray(inputs)
    folder = cache_dir or default_cache_dir()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{cache_key(source, inputs)}.npy")
    if os.path.exists(path):
        return np.load(path, mmap_mode="r"), True
    partial = f"{path}.{os.getpid()}.partial"
    try:
        features = None
        bar = tqdm.tqdm(total=len(inputs), desc="extracting features", unit="input", disable=not progress)
        with bar:
            for start in range(0, len(inputs), batch_size):
                batch = source_outputs(source, inputs[start : start + batch_size])
                if features is None:
                    features = np.lib.format.open_memmap(partial, "w+", np.float32, (len(inputs), *batch.shape[1:]))
                features[start : start + len(batch)] = batch
                bar.update(len(batch))
        features.flush()
        del features
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    return np.load(path, mmap_mode="r"), False


def _refuse_randomness_before(model):
    """Cached features assume the source sees the same image every epoch."""
    random_layers = [
        layer.name
        for layer in model.layers[: model.layers.index(model.backbone)]
        if isinstance(
            layer,
            keras.layers.RandomFlip
            | keras.layers.RandomCrop
            | keras.layers.RandomRotation
            | keras.layers.RandomZoom
            | keras.layers.RandomTranslation
            | keras.layers.RandomContrast,
        )
    ]
    if random_layers:
        raise ValueError(
            f"Augmentation layers {random_layers} run before the frozen source, so its "
            "features change every epoch and cannot be cached. Train with "
            "fine_tune() or model.fit() instead, or move augmentation out of the model."
        )


def fit_head(
    model,
    x,
    y,
    epochs="auto",
    batch_size=32,
    learning_rate=3e-3,
    validation_data=None,
    min_steps=None,
    patience="auto",
    cache_dir=None,
    progress=True,
    verbose="auto",
    **fit_kwargs,
):
    """Trains the head of a task model on cached source features.

    The source (`model.backbone`) is frozen; its features are extracted once
    (or read from the cache) and the model's own head layers are trained on
    them, so `model` itself ends up trained.

    Args:
        epochs: `"auto"` sizes the stage to the data: at least `min_steps`
            optimizer steps (300) and 10 epochs, and with `validation_data`
            early stopping on `val_loss` (patience 5, best weights kept);
            or a number of epochs to run as asked.
        learning_rate: peak rate of the default optimizer.
        patience: see `tfxfer.transfer.budget.stage_plan`.

    A compiled `model` trains with its own optimizer, loss and metrics;
    otherwise Adam at `learning_rate` with a 10% warm-up and cosine decay
    over the stage (a head on fixed features takes a higher rate than
    fine-tuning does), and the task's default loss and metrics.

    Returns:
        the `History` of the head's `fit`.
    """
    _refuse_randomness_before(model)
    if hasattr(model, "check_labels"):
        model.check_labels(y)
    if hasattr(model, "check_images"):
        model.check_images(x)
    model.backbone.trainable = False
    features, _ = extract_features(model.backbone, x, batch_size=batch_size, cache_dir=cache_dir, progress=progress)
    if hasattr(model, "adapt_feature_scaling"):
        model.adapt_feature_scaling(features)
    plan = stage_plan(
        "head",
        -(-len(features) // batch_size),
        epochs,
        validation=validation_data is not None,
        min_steps=min_steps or MIN_STEPS,
        patience=patience,
    )
    compiled = getattr(model, "compiled", False) and model.optimizer is not None
    kept = kept_compile_arguments(model)
    with model.distribute_strategy.scope():  # the head's weights and optimizer state live there
        head = HeadOnFeatures([keras.Input(features.shape[1:]), *_head_layers(model, features.ndim)])
        if not compiled:
            model.compile(
                optimizer=keras.optimizers.Adam(warmup_cosine(learning_rate, plan.epochs * plan.steps_per_epoch))
            )
            kept = kept_compile_arguments(model)
        head.compile(optimizer=model.optimizer, **kept)
    if verbose:
        how = "the model's optimizer" if compiled else f"Adam at {learning_rate:g} (warm-up + cosine)"
        print(f"fit_head, {plan.describe()}; {how}")
    if validation_data is not None:
        val_x, val_y = validation_data
        val_features, _ = extract_features(
            model.backbone, val_x, batch_size=batch_size, cache_dir=cache_dir, progress=progress
        )
        validation_data = (val_features, val_y)
    callbacks = [*plan.callbacks, *fit_kwargs.pop("callbacks", [])]
    return head.fit(
        features,
        y,
        epochs=plan.epochs,
        batch_size=batch_size,
        validation_data=validation_data,
        callbacks=callbacks,
        verbose=verbose,
        **fit_kwargs,
    )


class HeadOnFeatures(MultiWorkerFit, keras.Sequential):
    """The task's head layers on cached features, trainable on any strategy."""


def _head_layers(model, feature_ndim):
    layers = list(model.head_layers)
    if feature_ndim != 4:  # features already pooled by the source
        layers = [layer for layer in layers if not isinstance(layer, keras.layers.GlobalAveragePooling2D)]
    return layers
