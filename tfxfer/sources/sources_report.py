"""What `tfxfer sources` prints: each preset, and whether it is on this machine."""

import os

from tfxfer.paths import keras_cache_folder
from tfxfer.sources.applications import ARCHITECTURES
from tfxfer.sources.embedded import EMBEDDED_NAME, embedded_source_path


def _keras_weights_file(architecture):
    """The Keras cache's no-top ImageNet file of `architecture`, if downloaded."""
    folder = keras_cache_folder("models")
    prefix = architecture.replace("_b", "b") if architecture.startswith("efficientnet") else architecture
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    found = [n for n in names if n.startswith(prefix) and "no" in n and "top" in n]
    return os.path.join(folder, found[0]) if found else None


def _hub_cache_modules():
    folder = os.environ.get("TFHUB_CACHE_DIR")
    if not folder or not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n, "saved_model.pb")))


def source_rows():
    """`(name, where)` pairs: Keras presets (cached or downloaded on first
    use), the embedded sources, and modules in the TF-Hub cache."""
    from tfxfer.sources.embedded_vectors import embedded_vectors_path

    rows = []
    for architecture in ARCHITECTURES:
        cached = _keras_weights_file(architecture)
        rows.append((f"{architecture}/imagenet", f"cached: {cached}" if cached else "downloads on first use"))
        rows.append((f"{architecture}/random", "no weights (trains from scratch)"))
    rows.append((EMBEDDED_NAME, f"embedded: {embedded_source_path(verify=False)}"))
    rows.append(("embedded (word vectors)", f"embedded: {embedded_vectors_path(verify=False)}"))
    rows += [(f"tfhub: {name}", f"cached: {os.environ['TFHUB_CACHE_DIR']}/{name}") for name in _hub_cache_modules()]
    return rows
