"""Texts in the one form Keras feeds as `tf.string`: a 1-D object array."""

import numpy as np


def as_text_array(texts):
    """Texts as a 1-D numpy object array, the form Keras feeds as tf.string."""
    array = np.asarray(list(texts) if not isinstance(texts, np.ndarray) else texts, dtype=object)
    if array.ndim != 1:
        raise ValueError(f"Expected a flat list of strings, one per document. Received: shape {array.shape}")
    bad = next((i for i, t in enumerate(array) if not isinstance(t, str | bytes)), None)
    if bad is not None:
        raise TypeError(f"Document {bad} is a {type(array[bad]).__name__}, not a string.")
    return array


def as_model_inputs(x):
    """Texts (a list of str, a numpy str array, a pandas Series) as an object array; anything
    else (image arrays, object arrays, tensors, datasets) unchanged."""
    if isinstance(x, np.ndarray) and x.dtype.kind in "USO":  # object arrays: each checked to be a string
        return as_text_array(x)
    if isinstance(x, list | tuple) and len(x) and isinstance(x[0], str | bytes):
        return as_text_array(x)  # not np.asarray: a str array pads every text to the longest
    if hasattr(x, "to_numpy") and getattr(x, "ndim", 0) == 1:  # a pandas Series of texts
        return as_text_array(x.to_numpy(dtype=object))
    return x
