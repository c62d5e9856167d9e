"""Preset names -> pretrained sources.

`"<architecture>/imagenet"` and `"<architecture>/random"` name Keras
Applications backbones (`ImageBackbone`); `"digits04_cnn"` is the embedded
source shipped in `models/`; a URL or a folder is loaded with `HubFeatures`.
"""

import os

from tfxfer.sources.applications import ARCHITECTURES, ImageBackbone
from tfxfer.sources.embedded import EMBEDDED_NAME, embedded_source_path
from tfxfer.sources.hub import HubFeatures, is_remote_handle

_WEIGHTS = {"imagenet": "imagenet", "random": None}


def preset_names():
    """Every preset name `load_source` accepts, besides URLs and folders."""
    names = [f"{arch}/{weights}" for arch in ARCHITECTURES for weights in _WEIGHTS]
    return [*names, EMBEDDED_NAME]


def load_source(preset, **kwargs):
    """The source layer for `preset`; `kwargs` go to its constructor."""
    preset = os.fspath(preset)
    if preset == EMBEDDED_NAME:
        return HubFeatures(embedded_source_path(), **kwargs)
    architecture, _, weights = preset.partition("/")
    if architecture in ARCHITECTURES and weights in _WEIGHTS:
        return ImageBackbone(architecture, weights=_WEIGHTS[weights], **kwargs)
    if is_remote_handle(preset) or os.path.isdir(os.path.expanduser(preset)):
        return HubFeatures(preset, **kwargs)
    raise ValueError(
        f"Unknown preset {preset!r}. Use one of {preset_names()}, a TF-Hub "
        "handle (https://...), or a SavedModel folder."
    )
