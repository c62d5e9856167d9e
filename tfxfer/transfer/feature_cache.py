"""Feature extraction with an on-disk cache.

With the source frozen and nothing random before it, the source's output for
an image never changes: computing it once and training the head on the
stored features gives the same head for a fraction of the cost. Features are
written batch by batch into a memory-mapped `.npy` under a temporary name
and renamed when complete, so an interrupted extraction (or a full disk)
never leaves a cache file that looks valid.

A costly text encoder (`cache_per_text`, e.g. a sentence encoder) keeps
each text's features on its own, in shards keyed by the text's digest: runs
that share texts in another order or another split (other label budgets,
other seeds) compute only the texts not seen before. A source made of parts
(`feature_parts`, the hybrid of TF-IDF and a sentence encoder) caches each
part on its own terms and joins them (`join_features`).
"""

import contextlib
import functools
import hashlib
import json
import logging
import os

import keras
import numpy as np
import scipy.sparse
import tensorflow as tf
import tqdm

from tfxfer.data.texts import as_model_inputs
from tfxfer.log import logger
from tfxfer.settings import cache_folder
from tfxfer.transfer.contract import contract
from tfxfer.validation import check_consistent_length


def default_cache_dir():
    """`$TFXFER_CACHE`, else `$XDG_CACHE_HOME/tfxfer/features` (`~/.cache/tfxfer/features`)."""
    return cache_folder("features")


def cache_key(source, inputs):
    """Digest of what the features depend on: the source's class, config
    (architecture, preprocessing, input size, vocabulary; not the layers'
    names) and weights, the
    dtype policy, and the inputs themselves (images or texts)."""
    digest = hashlib.sha256()
    config = {"class": type(source).__name__, "config": _unnamed(source.get_config())}
    config["dtype"] = str(source.dtype_policy.name)
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


def _unnamed(config):
    """`config` without layer names, which Keras numbers per process (a
    second `from_preset` of the same source computes the same features)."""
    if isinstance(config, dict):
        return {key: _unnamed(value) for key, value in config.items() if key != "name"}
    if isinstance(config, (list, tuple)):
        return [_unnamed(value) for value in config]
    return config


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
    if hasattr(source, "feature_parts"):  # a hybrid: each part cached on its own terms, then joined
        parts = [extract_features(part, inputs, batch_size, folder, progress) for part in source.feature_parts]
        return source.join_features(*(features for features, _ in parts)), all(hit for _, hit in parts)
    if inputs.dtype == object and getattr(source, "cache_per_text", False):
        return _extract_per_text(source, inputs, batch_size, folder, progress)
    path = os.path.join(folder, cache_key(source, inputs))
    cached = _read_entry(path, len(inputs))
    if cached is not None:
        return cached, True
    partial = f"{path}.{os.getpid()}.partial"
    _report_truncation(source, inputs)
    try:
        features = _write_features(source, inputs, batch_size, path, partial, progress)
    except BaseException:
        for leftover in (partial, f"{partial}.npz"):
            if os.path.exists(leftover):
                os.remove(leftover)
        raise
    return features, False


def _text_digests(texts):
    """16 bytes of SHA-256 per text, one row each."""
    digests = [hashlib.sha256(t.encode() if isinstance(t, str) else bytes(t)).digest()[:16] for t in texts]
    return np.frombuffer(b"".join(digests), dtype="S16") if digests else np.array([], dtype="S16")


def _extract_per_text(source, texts, batch_size, folder, progress):
    """Features of `texts` from the source's shards of per-text entries,
    computing (and storing as one new shard) only the texts none holds."""
    shards = os.path.join(folder, cache_key(source, np.array([], dtype=object)))
    os.makedirs(shards, exist_ok=True)
    digests = _text_digests(texts)
    found = _read_shards(shards, set(digests.tolist()))
    missing = np.array([digest not in found for digest in digests.tolist()])
    if missing.any():
        todo = texts[missing]
        lengths = source.token_lengths(todo) if hasattr(source, "token_lengths") else None
        _report_truncation(source, todo, lengths)
        new = _compute_shard(source, todo, batch_size, progress, lengths)
        _write_shard(shards, digests[missing], new)
        found.update(zip(digests[missing].tolist(), new, strict=True))
    features = np.stack([found[digest] for digest in digests.tolist()]) if len(texts) else np.zeros((0, 0), "float32")
    return features, not missing.any()


def _read_shards(shards, wanted):
    """`{digest: features row}` for the `wanted` digests the shards hold; a
    damaged shard is removed with a notice (its texts are computed again)."""
    found = {}
    for name in sorted(os.listdir(shards)):
        if not name.endswith(".keys.npy"):
            continue
        keys_file = os.path.join(shards, name)
        rows_file = keys_file[: -len(".keys.npy")] + ".npy"
        try:
            keys, rows = np.load(keys_file), np.load(rows_file, mmap_mode="r")
            if len(keys) != len(rows):
                raise ValueError(f"{len(keys)} texts for {len(rows)} rows")
        except (OSError, ValueError, EOFError) as error:
            logger.warning(f"The feature cache shard '{rows_file}' is damaged ({' '.join(str(error).split())}); "
                           "it is removed and its texts recomputed.")  # fmt: skip
            for file in (keys_file, rows_file):
                if os.path.exists(file):
                    os.remove(file)
            continue
        for index, key in enumerate(keys.tolist()):
            if key in wanted and key not in found:
                found[key] = np.asarray(rows[index])
    return found


def _compute_shard(source, texts, batch_size, progress, lengths=None):
    """The source's dense features of `texts`, batch by batch, in memory:
    texts of like length batched together, each batch padded to its longest
    (`length_batches`), where the source knows the texts' `lengths`."""
    if lengths is None or not hasattr(source, "length_batches"):
        batches = [(np.arange(start, min(start + batch_size, len(texts))), None)
                   for start in range(0, len(texts), batch_size)]  # fmt: skip
    else:
        batches = list(source.length_batches(lengths, batch_size))
    rows, functions = None, {}
    with (
        tqdm.tqdm(total=len(texts), desc="extracting features", unit="text", disable=not progress) as bar,
        _one_graph_per_length(),
    ):
        for indices, length in batches:
            with source.reading(length) if length else contextlib.nullcontext():
                if length not in functions:  # one graph per length, traced at it
                    functions[length] = batch_function(source)
                batch = np.asarray(functions[length](texts[indices]), dtype=np.float32)
            if rows is None:
                rows = np.empty((len(texts), *batch.shape[1:]), dtype=np.float32)
            rows[indices] = batch
            bar.update(len(indices))
    return rows


class _RetracingNotice(logging.Filter):
    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _one_graph_per_length():
    """One graph per sequence length is by design: TensorFlow's notice that
    a function was traced often would only alarm the reader."""
    notice, tensorflow_logger = _RetracingNotice(), logging.getLogger("tensorflow")
    tensorflow_logger.addFilter(notice)
    try:
        yield
    finally:
        tensorflow_logger.removeFilter(notice)


def _write_shard(shards, digests, rows):
    """Rows first, then their keys, each under a temporary name: a shard
    whose keys exist is complete."""
    name = os.path.join(shards, hashlib.sha256(digests.tobytes()).hexdigest()[:24])
    for data, file in ((rows, f"{name}.npy"), (digests, f"{name}.keys.npy")):
        partial = f"{file}.{os.getpid()}.partial.npy"
        try:
            np.save(partial, data)
            os.replace(partial, file)
        except BaseException:
            if os.path.exists(partial):
                os.remove(partial)
            raise


def _report_truncation(source, inputs, lengths=None):
    """Says how many texts a sentence encoder cuts at its sequence length."""
    share = source.truncated_share(inputs, lengths) if hasattr(source, "truncated_share") else 0.0
    if share > 0:
        length = source.preprocessing.sequence_length
        logger.info(
            f"{100 * share:.0f} % of the {len(inputs)} texts are longer than the {length} tokens the encoder reads; "
            "their ends are cut (sequence_length= sets it)."
        )


def _read_entry(path, count):
    """The cached features at `path` (`.npy` or `.npz`), None when there are
    none; an entry that is damaged (cut short, overwritten) or holds another
    number of rows is removed with a notice, so it is computed again."""
    for suffix, read in ((".npy", lambda f: np.load(f, mmap_mode="r")), (".npz", scipy.sparse.load_npz)):
        file = f"{path}{suffix}"
        if not os.path.exists(file):
            continue
        try:
            features = read(file)
            if features.shape[0] == count:
                return features
            problem = f"{features.shape[0]} rows for {count} inputs"
        except (OSError, ValueError, EOFError) as error:  # numpy: "mmap length is greater than file size"
            problem = " ".join(str(error).split())
        logger.warning(f"The feature cache entry '{file}' is damaged ({problem}); it is removed and recomputed.")
        os.remove(file)
    return None


def _write_features(source, inputs, batch_size, path, partial, progress):
    """Extracts batch by batch into `partial` (a memory-mapped `.npy`, or a
    sparse `.npz` for wide features), then renames it into the cache."""
    features, sparse_rows, outputs = None, [], batch_function(source)
    unit = "text" if inputs.dtype == object else "input"
    with tqdm.tqdm(total=len(inputs), desc="extracting features", unit=unit, disable=not progress) as bar:
        for start in range(0, len(inputs), batch_size):
            batch = outputs(inputs[start : start + batch_size])
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


def source_outputs(source, batch):
    """The source's outputs for one batch, in inference mode, as an array
    (a `scipy.sparse.csr_matrix` for a source with sparse outputs)."""
    return batch_function(source)(batch)


def batch_function(source):
    """A function of one batch to the source's outputs (as `source_outputs`
    gives them), compiled once for the batches of one extraction where it
    pays: a Keras model through its own predict function, a layer that
    declares `extract_in_graph` (a KerasHub encoder: twice as fast in a
    graph as eagerly) through a `tf.function`; another bare layer (e.g.
    HubFeatures, whose module runs its own graph) is called as it is."""
    if isinstance(source, keras.Model):
        call = source.predict_on_batch
    elif getattr(source, "extract_in_graph", False):

        @tf.function(reduce_retracing=True, autograph=False)
        def call(batch):
            return source(batch, training=False)

    else:
        call = functools.partial(source, training=False)

    def outputs(batch):
        result = call(batch)
        if isinstance(result, tf.SparseTensor):
            indices = result.indices.numpy()
            return scipy.sparse.csr_matrix(
                (result.values.numpy(), (indices[:, 0], indices[:, 1])), shape=tuple(result.dense_shape.numpy())
            )
        return np.asarray(result)

    return outputs


def adapt_scaling_on_inputs(model, x, limit=2048, batch_size=64):
    """Adapts the head's feature scaling (once) on the source's features of
    up to `limit` training inputs: arrays are sliced, datasets read batch by
    batch."""
    task = contract(model)
    if task.feature_scaling is None or task.feature_scaling_adapted:
        return
    if isinstance(x, tf.data.Dataset):  # batched of inputs or (inputs, labels, ...)
        batches = [batch[0] if isinstance(batch, tuple) else batch for batch in x.take(max(limit // 32, 1))]
        sample = np.concatenate([np.asarray(b) for b in batches])[:limit]
    else:
        sample = as_model_inputs(x)[:limit]
    outputs = batch_function(task.backbone)
    task.adapt_feature_scaling(
        np.concatenate([outputs(sample[i : i + batch_size]) for i in range(0, len(sample), batch_size)])
    )


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


def source_features(model, x, y=None, batch_size=32, cache_dir=None, progress=True, adapt=True):
    """The frozen source's features of `x` for `model`'s head (checked, then
    from the cache or computed once); with `adapt`, the first call adapts
    the head's feature scaling on them (`Task.adapt_feature_scaling`)."""
    task = contract(model)
    _refuse_randomness_before(task)
    if y is not None and not isinstance(y, dict):
        check_consistent_length(x=x, y=y)
    task.check_labels(y)
    task.check_inputs(x)
    task.backbone.trainable = False
    features, _ = extract_features(task.backbone, x, batch_size=batch_size, cache_dir=cache_dir, progress=progress)
    if adapt:
        task.adapt_feature_scaling(features)
    return features
