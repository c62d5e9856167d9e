"""tfxfer: transfer learning on Keras 3 / TensorFlow.

Pretrained sources (TF-Hub modules, KerasHub presets, Keras Applications,
word vectors) become Keras 3 layers (`HubFeatures`, `KerasHubFeatures`,
`ImageBackbone`, `WordVectors`);
task models (`ImageClassifier`, `TextClassifier`, `MultiTaskClassifier`,
all a `Task`) put a head, or one per task, on them;
`fit_head`, `fit_stage` and `fine_tune` train them, `self_train` with
unlabelled data too, `contrastive_fine_tune` a sentence encoder on few
labels; `export` writes a SavedModel that serves raw inputs (or a LiteRT
or ONNX file, verified with its own runtime),
`load_model` reads a saved `.keras` file back. `presets()` lists the named
sources, `rank_sources` scores candidates on your data before any training.
A user's own Keras models are reused with `transfer_weights` and
`clone_structure`.

Documented subpackages: `tfxfer.data` (datasets, splits, pipelines),
`tfxfer.deploy` (LiteRT and ONNX files and their runtimes),
`tfxfer.methods` (methods of the literature), `tfxfer.transfer`
(fine-tuning primitives, per-group optimizers), `tfxfer.distribute`
(strategies, precision), `tfxfer.sources` (the source layers),
`tfxfer.plots`, `tfxfer.log`.

The names load on first use (TensorFlow with them), so `import tfxfer`
and the `tfxfer` command's `--help` are instant; the first name used
imports them all, which also registers every tfxfer layer for loading
`.keras` files (`tfxfer.load_model` does it for you).
"""

import importlib

__version__ = "0.1.0"

# name -> the module that defines it (a subpackage: the module itself).
_PUBLIC = {
    "HubFeatures": "tfxfer.sources",
    "ImageBackbone": "tfxfer.sources",
    "KerasHubFeatures": "tfxfer.sources",
    "WordVectors": "tfxfer.sources",
    "text_encoder": "tfxfer.sources",
    "Preset": "tfxfer.sources.registry",
    "get_preset": "tfxfer.sources.registry",
    "preset_path": "tfxfer.sources.registry",
    "presets": "tfxfer.sources.registry",
    "ImageClassifier": "tfxfer.tasks",
    "MultiTaskClassifier": "tfxfer.tasks",
    "Task": "tfxfer.tasks",
    "TextClassifier": "tfxfer.tasks",
    "clone_structure": "tfxfer.transfer",
    "contrastive_fine_tune": "tfxfer.transfer",
    "fine_tune": "tfxfer.transfer",
    "fit_head": "tfxfer.transfer",
    "fit_stage": "tfxfer.transfer",
    "self_train": "tfxfer.transfer",
    "transfer_weights": "tfxfer.transfer",
    "rank_sources": "tfxfer.methods",
    "export": "tfxfer.deploy",
    "export_hub_module": "tfxfer.exporting",
    "evaluate_model": "tfxfer.evaluation",
    "load_model": "tfxfer.evaluation",
}
_SUBPACKAGES = ("data", "deploy", "distribute", "log", "methods", "plots", "sources", "transfer")

__all__ = sorted([*_PUBLIC, *_SUBPACKAGES])


def _load_all():
    """Imports every public name at once: each registers its Keras classes."""
    for module in {*_PUBLIC.values(), *(f"tfxfer.{name}" for name in _SUBPACKAGES)}:
        importlib.import_module(module)


def __getattr__(name):
    if name in _SUBPACKAGES:
        _load_all()
        return importlib.import_module(f"tfxfer.{name}")
    if name in _PUBLIC:
        _load_all()
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfxfer' has no attribute {name!r}")


def __dir__():
    return __all__
