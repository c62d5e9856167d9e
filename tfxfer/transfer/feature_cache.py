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
import scipy.sparse
import tqdm

from tfxfer.distribute import MultiWorkerFit
from tfxfer.sources.text_encoding import as_model_inputs
from tfxfer.transfer.budget import balanced_tasks, least_steps, repeat_small_data, stage_plan
from tfxfer.transfer.fine_tuning import kept_compile_arguments, source_outputs
from tfxfer.transfer.optimizers import warmup_cosine
from tfxfer.transfer.solved_head import fit_linear_head, linear_head

SOLVERS = ("adam", "auto")


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


SPARSE_WIDTH = 65536  # wider features (TF-IDF of every 1-2 gram) are mostly zeros: stored sparse


def extract_features(source, inputs, batch_size=64, cache_dir=None, progress=True):
    """The source's features for `inputs` (images or texts), from the cache
    or computed once.

    Returns:
        `(features, hit)`: a read-only memory-mapped array, or, for a source
        with sparse outputs (the hybrid text encoder) or features wider than
        `SPARSE_WIDTH`, a `scipy.sparse.csr_matrix`; and whether it came
        from the cache.
    """
    inputs = as_model_inputs(inputs)
    inputs = inputs if isinstance(inputs, np.ndarray) else np.asarray(inputs)
    folder = cache_dir or default_cache_dir()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, cache_key(source, inputs))
    if os.path.exists(f"{path}.npy"):
        return np.load(f"{path}.npy", mmap_mode="r"), True
    if os.path.exists(f"{path}.npz"):
        return scipy.sparse.load_npz(f"{path}.npz"), True
    partial = f"{path}.{os.getpid()}.partial"
    try:
        features = _write_features(source, inputs, batch_size, path, partial, progress)
    except BaseException:
        for leftover in (partial, f"{partial}.npz"):
            if os.path.exists(leftover):
                os.remove(leftover)
        raise
    return features, False


def _write_features(source, inputs, batch_size, path, partial, progress):
    """Extracts batch by batch into `partial` (a memory-mapped `.npy`, or a
    sparse `.npz` for wide features), then renames it into the cache."""
    features, sparse_rows = None, []
    with tqdm.tqdm(total=len(inputs), desc="extracting features", unit="input", disable=not progress) as bar:
        for start in range(0, len(inputs), batch_size):
            batch = source_outputs(source, inputs[start : start + batch_size])
            if scipy.sparse.issparse(batch) or (batch.ndim == 2 and batch.shape[1] > SPARSE_WIDTH):
                sparse_rows.append(scipy.sparse.csr_matrix(batch, dtype=np.float32))
            else:
                if features is None:
                    features = np.lib.format.open_memmap(partial, "w+", np.float32, (len(inputs), *batch.shape[1:]))
                features[start : start + len(batch)] = batch
            bar.update(batch.shape[0])
    if sparse_rows:
        matrix = scipy.sparse.vstack(sparse_rows, format="csr", dtype=np.float32)
        scipy.sparse.save_npz(f"{partial}.npz", matrix)  # save_npz names it *.npz
        os.replace(f"{partial}.npz", f"{path}.npz")
        return matrix
    features.flush()
    del features
    os.replace(partial, f"{path}.npy")
    return np.load(f"{path}.npy", mmap_mode="r")


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
    solver="adam",
    refit=False,
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
        solver: `"adam"` (gradient steps, as above) or `"auto"`: a head
            that is linear on the features (scaling, dropout, one dense
            layer, the default loss) is a convex problem, solved exactly by
            scikit-learn's `LinearSVC` (one class against the rest, its C
            the best on validation of a grid scaled to the features' size),
            its scores scaled into logits by the temperature with the best
            validation log-loss; it needs `validation_data`. Any other head
            trains with Adam.
        refit: for a solved linear head, fit it again on the training and
            the validation examples once C and the temperature are chosen
            (the returned history is from before).

    A compiled `model` trains with its own optimizer, loss and metrics;
    otherwise Adam at `learning_rate` with a 10% warm-up and cosine decay
    over the stage (a head on fixed features takes a higher rate than
    fine-tuning does), and the task's default loss and metrics.

    Returns:
        the `History` of the head's `fit`.
    """
    features = source_features(model, x, y, batch_size, cache_dir, progress)
    if validation_data is not None:
        val_x, val_y = validation_data
        validation_data = (source_features(model, val_x, val_y, batch_size, cache_dir, progress), val_y)
    return fit_head_on_features(
        model,
        features,
        y,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        validation_data=validation_data,
        min_steps=min_steps,
        patience=patience,
        verbose=verbose,
        solver=solver,
        refit=refit,
        **fit_kwargs,
    )


def source_features(model, x, y=None, batch_size=32, cache_dir=None, progress=True, adapt=True):
    """The frozen source's features of `x` for `model`'s head (checked, then
    from the cache or computed once); with `adapt`, the first call adapts
    the head's feature scaling on them (`Task.adapt_feature_scaling`)."""
    _refuse_randomness_before(model)
    if hasattr(model, "check_labels"):
        model.check_labels(y)
    if hasattr(model, "check_images"):
        model.check_images(x)
    model.backbone.trainable = False
    features, _ = extract_features(model.backbone, x, batch_size=batch_size, cache_dir=cache_dir, progress=progress)
    if adapt and hasattr(model, "adapt_feature_scaling"):
        model.adapt_feature_scaling(features)
    return features


def fit_head_on_features(
    model,
    features,
    y,
    epochs="auto",
    batch_size=32,
    learning_rate=3e-3,
    validation_data=None,
    min_steps=None,
    patience="auto",
    verbose="auto",
    fresh_optimizer=False,
    solver="adam",
    seed=0,
    refit=False,
    svm_c="auto",
    **fit_kwargs,
):
    """`fit_head` on features already extracted (`source_features`), with
    validation features in `validation_data`. `fresh_optimizer` starts a new
    default optimizer even if `model` is compiled (a new stage); `svm_c`
    fixes the C of a solved head (`"auto"`: chosen on validation, and
    reported in the history as `C`)."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}. Received: solver={solver!r}")
    dense = linear_head(model) if solver == "auto" and validation_data is not None else None
    if dense is not None:
        if verbose:
            print("fit_head: the linear head solved exactly (LinearSVC, scores calibrated on the validation data)")
        with model.distribute_strategy.scope():
            head = head_on_features(model, features)
            if not getattr(model, "compiled", False):
                model.compile()
            head.compile(optimizer=model.optimizer, **kept_compile_arguments(model))  # callbacks read it
        weights = fit_kwargs.get("sample_weight")
        history = fit_linear_head(head, dense, features, y, weights, *validation_data, seed, refit=refit, c=svm_c)
        _report_one_epoch(fit_kwargs.get("callbacks") or [], head, history)
        return history
    features, y = balanced_tasks(model, features, y, fit_kwargs)
    passes = 1
    if epochs == "auto":
        features, y, passes = repeat_small_data(features, y, fit_kwargs, batch_size)
    plan = stage_plan(
        "head",
        -(-features.shape[0] // batch_size),
        epochs,
        validation=validation_data is not None,
        min_steps=least_steps(model, min_steps),
        patience=patience,
        passes=passes,
    )
    compiled = getattr(model, "compiled", False) and model.optimizer is not None and not fresh_optimizer
    kept = kept_compile_arguments(model)
    with model.distribute_strategy.scope():  # the head's weights and optimizer state live there
        head = head_on_features(model, features)
        if not compiled:  # the default optimizer; a compiled model's loss and metrics kept
            schedule = warmup_cosine(learning_rate, plan.epochs * plan.steps_per_epoch)
            model.compile(optimizer=keras.optimizers.Adam(schedule), **kept)
            kept = kept_compile_arguments(model)
        head.compile(optimizer=model.optimizer, **kept)
    if verbose:
        how = "the model's optimizer" if compiled else f"Adam at {learning_rate:g} (warm-up + cosine)"
        print(f"fit_head, {plan.describe()}; {how}")
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


def _report_one_epoch(callbacks, head, history):
    """Tells `callbacks` (TensorBoard, loggers) of a solved head as of one epoch."""
    callbacks = keras.callbacks.CallbackList(callbacks, model=head)
    logs = {name: values[-1] for name, values in history.history.items()}
    callbacks.on_train_begin()
    callbacks.on_epoch_begin(0)
    callbacks.on_epoch_end(0, logs)
    callbacks.on_train_end(logs)


def head_on_features(model, features):
    """`model`'s own head layers as a model on `features` (shared weights);
    a head that is not a stack of layers builds its own (`head_on_features`)."""
    if hasattr(model, "head_on_features"):
        return model.head_on_features(features)
    return HeadOnFeatures([keras.Input(features.shape[1:]), *_head_layers(model, features.ndim)])


class HeadOnFeatures(MultiWorkerFit, keras.Sequential):
    """The task's head layers on cached features, trainable on any strategy."""


def _head_layers(model, feature_ndim):
    layers = list(model.head_layers)
    if feature_ndim != 4:  # features already pooled by the source
        layers = [layer for layer in layers if not isinstance(layer, keras.layers.GlobalAveragePooling2D)]
    return layers
