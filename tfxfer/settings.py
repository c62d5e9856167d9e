"""Every environment variable tfxfer reads, each parsed in one place.

A value that does not parse is an error naming the variable, the value and
the form expected; an empty value counts as unset. Variables are read at
each call (not at import), so a notebook can set `os.environ[...]` too.

| variable | what | form |
| --- | --- | --- |
| `TFXFER_CACHE` | the feature cache's folder | a path |
| `TFXFER_MODELS` | the folder of the shipped sources | a path |
| `TFXFER_MAX_*` | limits on untrusted files (`tfxfer.data.limits`) | a size such as `4GiB`, or a count |
| `TFXFER_VERBOSE` | TensorFlow's C++ start-up lines shown by the CLI | `1` / `0` |
| `KERAS_HOME` | Keras' download cache (read as Keras reads it) | a path |
| `XDG_CACHE_HOME` | the base of `~/.cache` | a path |
| `TFHUB_CACHE_DIR` | TF-Hub's module cache | a path |
| `HF_HUB_CACHE`, `HF_HOME` | Hugging Face's model cache (`tfxfer sources`) | a path |
| `SENTENCE_TRANSFORMERS_HOME` | sentence-transformers' model cache (`tfxfer sources`) | a path |
| `TF_CONFIG` | the multi-worker cluster (TensorFlow's own variable) | JSON |
| `TPU_NAME`, `COLAB_TPU_ADDR` | an attached TPU | any non-empty value |

>>> parse_size("TFXFER_MAX_ENTRY_BYTES", "4GiB")
4294967296
>>> parse_size("TFXFER_MAX_ENTRIES", "200,000")
200000
"""

import json
import os
import re

_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
_UNITS.update({"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40, "b": 1})
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)


class SettingError(ValueError):
    """An environment variable whose value tfxfer cannot use."""


def _value(name):
    """The variable's value, None when unset or empty."""
    text = os.environ.get(name)
    return text if text is not None and text.strip() else None


def parse_size(name, text):
    """A positive whole number, with an optional unit (`4GiB`, `500 MB`,
    `200,000`), from variable `name`'s `text`."""
    match = _SIZE.match(text.replace(",", "").replace("_", ""))
    unit = (match.group(2) or "").lower() if match else ""
    unit = unit if unit in _UNITS else unit.rstrip("b")
    if match and unit in _UNITS:
        value = float(match.group(1)) * _UNITS[unit]
        if value >= 1:
            return int(value)
    raise SettingError(
        f"{name}={text!r} is not a positive whole number: write it as 4294967296, 4GiB or 200,000 (or unset it)."
    )


def size(name, default):
    """A size or count from `name` (see `parse_size`), `default` when unset."""
    text = _value(name)
    return default if text is None else parse_size(name, text)


def path(name, default=None):
    """A folder from `name`, `~` expanded; `default` when unset or empty."""
    text = _value(name)
    return os.path.expanduser(text) if text is not None else default


def flag(name, default=False):
    """A yes/no setting: 1, true, yes, on (or 0, false, no, off)."""
    text = _value(name)
    if text is None:
        return default
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise SettingError(f"{name}={text!r} is not a yes/no value: write 1 or 0 (or unset it).")


def cache_folder(part):
    """A folder of tfxfer's cache: `$TFXFER_CACHE` itself for the features
    (as before), else `$XDG_CACHE_HOME/tfxfer/<part>` (`~/.cache/tfxfer/<part>`)."""
    override = path("TFXFER_CACHE")
    if override is not None:
        return override if part == "features" else os.path.join(override, part)
    return os.path.join(path("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "tfxfer", part)


def models_override():
    """`$TFXFER_MODELS`, or None."""
    return path("TFXFER_MODELS")


def keras_cache_folder(subdir):
    """`$KERAS_HOME/<subdir>`, `~/.keras/<subdir>` by default (where Keras keeps its downloads)."""
    return os.path.join(path("KERAS_HOME", os.path.expanduser(os.path.join("~", ".keras"))), subdir)


def encoder_cache_folders():
    """Where Hugging Face and sentence-transformers keep downloaded models:
    `$HF_HUB_CACHE` (else `$HF_HOME/hub`, `~/.cache/huggingface/hub`) and
    `$SENTENCE_TRANSFORMERS_HOME` (else `~/.cache/torch/sentence_transformers`)."""
    cache = path("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    hub = path("HF_HUB_CACHE") or os.path.join(path("HF_HOME", os.path.join(cache, "huggingface")), "hub")
    sentence = path("SENTENCE_TRANSFORMERS_HOME", os.path.join(cache, "torch", "sentence_transformers"))
    return os.path.abspath(hub), os.path.abspath(sentence)


def tfhub_cache_folder():
    """`$TFHUB_CACHE_DIR`, or None."""
    return path("TFHUB_CACHE_DIR")


def tpu_attached():
    """Whether the environment names a TPU (`TPU_NAME`, `COLAB_TPU_ADDR`)."""
    return _value("TPU_NAME") is not None or _value("COLAB_TPU_ADDR") is not None


def _shown(text, limit=80):
    """`text` as an error message quotes it: repr, cut at `limit` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def tf_config():
    """`TF_CONFIG` as a dict (None when unset), checked to be a JSON object."""
    text = _value("TF_CONFIG")
    if text is None:
        return None
    try:
        config = json.loads(text)
    except ValueError as error:
        raise SettingError(
            f"TF_CONFIG={_shown(text)} is not JSON ({error}): set it as "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}, '
            "or unset it for one machine."
        ) from None
    if not isinstance(config, dict):
        raise SettingError(
            f"TF_CONFIG={_shown(text)} holds {type(config).__name__}, not a JSON object with 'cluster' and 'task'."
        )
    return config


def show_tensorflow_logs():
    """Whether the CLI shows TensorFlow's C++ start-up lines (`TFXFER_VERBOSE=1`)."""
    return flag("TFXFER_VERBOSE")
