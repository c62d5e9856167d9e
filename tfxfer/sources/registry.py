"""The one table of preset sources: names, aliases, what each is, where it lives.

Image presets are Keras Applications backbones (`"<architecture>/imagenet"`,
`"<architecture>/random"`) and the shipped `digits04_cnn`; the text preset
is the shipped word vectors `wiki_news_w2v`. `"embedded"` is an alias for
the shipped source of each kind. Besides names, a source may be a TF-Hub
handle (URL), a SavedModel folder, or (text) a word-vector file.

`from_preset` on the task models and `ImageBackbone`, the CLI, the recipes
and `tfxfer sources` all read this table; `tfxfer.sources.resolve` turns
any source (a name, a handle, a path) into what to build.

>>> import tfxfer
>>> [p.name for p in tfxfer.presets("text")]
['wiki_news_w2v']
>>> tfxfer.get_preset("embedded", kind="image").name
'digits04_cnn'
"""

import dataclasses
import os

from tfxfer.settings import keras_cache_folder
from tfxfer.sources.architectures import ARCHITECTURES
from tfxfer.sources.embedded import EMBEDDED_NAME, embedded_source_path
from tfxfer.validation import check_choice

KINDS = ("image", "text")
EMBEDDED_ALIAS = "embedded"
SHIPPED_VECTORS = "wiki_news_w2v"
_WEIGHTS = ("imagenet", "random")


@dataclasses.dataclass(frozen=True)
class Preset:
    """One named source.

    Attributes:
        name: the canonical name.
        kind: `"image"` or `"text"`.
        description: what it is.
        aliases: other names that select it.
        architecture / weights: for Keras Applications presets.
        shipped: the folder name under `models/` for sources tfxfer ships.
        input_range: images: the `(low, high)` pixel values the source was
            trained on, as it takes them (raw 0-255 for Keras Applications,
            whose preprocessing is inside).
    """

    name: str
    kind: str
    description: str
    aliases: tuple = ()
    architecture: str | None = None
    weights: str | None = None
    shipped: str | None = None
    input_range: tuple | None = None

    @property
    def path(self):
        """The local file or folder of a shipped source (checked against its manifest)."""
        if self.shipped == EMBEDDED_NAME:
            return embedded_source_path()
        if self.shipped == SHIPPED_VECTORS:
            from tfxfer.sources.embedded_vectors import embedded_vectors_path

            return embedded_vectors_path()
        return None

    @property
    def location(self):
        """Where the weights are on this machine, or how they would come."""
        if self.shipped:
            return f"shipped: {self.path}"
        if self.weights == "random":
            return "no weights (trains from scratch)"
        cached = _keras_weights_file(self.architecture)
        return f"cached: {cached}" if cached else "downloads on first use"

    @property
    def available_offline(self):
        return not self.location.startswith("downloads")


def _keras_weights_file(architecture):
    """The Keras cache's no-top ImageNet file of `architecture`, if downloaded."""
    folder = keras_cache_folder("models")
    prefix = architecture.replace("_b", "b") if architecture.startswith("efficientnet") else architecture
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    found = [n for n in names if n.startswith(prefix) and "no" in n and "top" in n]
    return os.path.join(folder, found[0]) if found else None


def _table():
    rows = []
    for architecture in ARCHITECTURES:
        for weights in _WEIGHTS:
            what = "ImageNet weights" if weights == "imagenet" else "random initialisation"
            rows.append(
                Preset(
                    f"{architecture}/{weights}",
                    "image",
                    f"Keras Applications {architecture}, {what}",
                    architecture=architecture,
                    weights=weights,
                    input_range=(0, 255),
                )
            )
    rows.append(
        Preset(
            EMBEDDED_NAME,
            "image",
            "small CNN trained on scikit-learn's digits 0-4 (8x8 grey images)",
            aliases=(EMBEDDED_ALIAS,),
            shipped=EMBEDDED_NAME,
            input_range=(0, 16),  # scikit-learn's digits
        )
    )
    rows.append(
        Preset(
            SHIPPED_VECTORS,
            "text",
            "word2vec vectors trained on gensim's Wikipedia and news test text",
            aliases=(EMBEDDED_ALIAS,),
            shipped=SHIPPED_VECTORS,
        )
    )
    return rows


def presets(kind=None):
    """Every preset, or those of `kind` (`"image"` or `"text"`)."""
    if kind is not None:
        check_choice("kind", kind, KINDS, " or None")
    return [p for p in _table() if kind in (None, p.kind)]


def get_preset(name, kind=None):
    """The preset called `name` (or one of its aliases), None if there is none.

    An alias shared by both kinds (`"embedded"`) needs `kind`.
    """
    found = [p for p in presets(kind) if name == p.name or name in p.aliases]
    if len(found) > 1:
        raise ValueError(f"{name!r} names a source of each kind; pass kind='image' or kind='text'.")
    return found[0] if found else None


def preset_path(name):
    """The local path of a shipped source: the SavedModel folder of
    `digits04_cnn`, the vectors file of `wiki_news_w2v`."""
    preset = get_preset(name, kind=None if name != EMBEDDED_ALIAS else "image")
    if preset is None or not preset.shipped:
        shipped = [p.name for p in presets() if p.shipped]
        raise ValueError(f"{name!r} is not a source tfxfer ships; those are {shipped}.")
    return preset.path
