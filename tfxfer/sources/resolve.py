"""What a source names, decided in one place for images and text alike.

`resolve(source, kind)` reads a preset name (`registry`), a KerasHub preset,
a TF-Hub handle, a SavedModel folder or (text) a word-vector file, and says
which form it is and where it lives; `image_source` builds the layer.
`TextClassifier.from_preset` builds text sources from the same answer (word
vectors need the training texts first).
"""

import dataclasses
import os

from tfxfer.settings import tfhub_cache_folder
from tfxfer.sources.kerashub import is_kerashub_handle, is_kerashub_name
from tfxfer.sources.registry import get_preset, presets

FORMS = ("applications", "shipped", "kerashub", "module", "vectors")
VECTOR_SUFFIXES = (".bin", ".txt", ".vec", ".gz", ".bz2", ".model", ".kv")


@dataclasses.dataclass(frozen=True)
class ResolvedSource:
    """`form`: one of `FORMS`; `location`: the preset name, handle or path to build from."""

    form: str
    location: str


def resolve(source, kind):
    """The form of `source` for `kind` (`"image"` or `"text"`), or an error
    that lists what a source may be."""
    source = os.fspath(source)
    preset = get_preset(source, kind)
    if preset is not None:
        if preset.architecture:
            return ResolvedSource("applications", source)
        return ResolvedSource("shipped" if kind == "image" else "vectors", os.fspath(preset.path))
    if is_kerashub_handle(source) or (
        os.sep not in source and not os.path.exists(source) and is_kerashub_name(source, kind)
    ):
        return ResolvedSource("kerashub", source)
    path = os.path.expanduser(source)
    if "://" in source or os.path.isdir(path):  # a TF-Hub handle (URL, gs://) or a SavedModel folder
        return ResolvedSource("module", source)
    if source.endswith(".keras"):
        raise ValueError(
            f"{source!r} is a trained Keras model, not a pretrained source: load it with keras.saving.load_model, "
            "or reuse its weights with tfxfer.transfer_weights; `tfxfer evaluate RUN` and `tfxfer export RUN OUT` "
            "take a run folder."
        )
    if kind == "text" and os.path.isfile(path):
        return ResolvedSource("vectors", source)
    if kind == "text" and (source.endswith(VECTOR_SUFFIXES) or os.sep in source):
        raise FileNotFoundError(
            f"No word vectors at '{source}': pass a word2vec/GloVe/fastText file that exists, a TF-Hub text "
            "module, or a preset ('embedded' is the shipped vectors; `tfxfer sources` lists them)."
        )
    raise unknown_source_error(source, kind)


def unknown_source_error(source, kind):
    names = [p.name for p in presets(kind)]
    extra = ", a word2vec/GloVe/fastText file" if kind == "text" else ""
    return ValueError(
        f"Unknown {kind} source {source!r}: pass a preset ({', '.join(names)}; `tfxfer sources` lists them), "
        f"a KerasHub preset (a name, kaggle://..., hf://... or a preset folder), a TF-Hub handle (https://...), "
        f"a SavedModel folder{extra}."
    )


def image_source(source, input_size=None, weights=None, **kwargs):
    """The image source layer for a preset name, KerasHub preset, TF-Hub
    handle or SavedModel folder. `input_size` and `weights` (a local `.h5`
    file) apply to Keras Applications presets (`input_size` also to
    KerasHub image converters); `kwargs` go to the source's constructor."""
    from tfxfer.sources.applications import ImageBackbone
    from tfxfer.sources.hub import HubFeatures
    from tfxfer.sources.kerashub import KerasHubFeatures

    resolved = resolve(source, "image")
    if resolved.form == "applications":
        return ImageBackbone.from_preset(resolved.location, input_size=input_size, weights=weights, **kwargs)
    if weights is not None:
        raise ValueError(
            f"weights= (a local .h5 file) applies to Keras Applications presets such as 'mobilenet_v2/imagenet'; "
            f"{source!r} is not one."
        )
    if resolved.form == "kerashub":
        return KerasHubFeatures.from_preset(resolved.location, kind="image", image_size=input_size, **kwargs)
    return HubFeatures(resolved.location, **kwargs)  # the shipped source, a TF-Hub handle or a SavedModel folder


def hub_cache_modules():
    """`(name, folder)` of each complete module in the TF-Hub cache."""
    folder = tfhub_cache_folder()
    if not folder or not os.path.isdir(folder):
        return []
    return [
        (n, os.path.join(folder, n))
        for n in sorted(os.listdir(folder))
        if os.path.isfile(os.path.join(folder, n, "saved_model.pb"))
    ]
