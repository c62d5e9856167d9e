"""tfxfer: transfer learning on Keras 3 / TensorFlow.

Pretrained sources (TF-Hub modules, KerasHub presets, Keras Applications,
word vectors) become Keras 3 layers (`HubFeatures`, `KerasHubFeatures`,
`ImageBackbone`, `WordVectors`);
task models (`ImageClassifier`, `TextClassifier`, `MultiTaskClassifier`)
put a head, or one per task, on them;
`fit_head` and `fine_tune` train them, `self_train` with unlabelled data too; `export` writes a SavedModel that
serves raw inputs. `presets()` lists the named sources. A user's own Keras
models are reused with `transfer_weights` and `clone_structure`.

Documented subpackages: `tfxfer.data` (datasets, pipelines),
`tfxfer.methods` (methods of the literature), `tfxfer.transfer`
(fine-tuning primitives, per-group optimizers), `tfxfer.distribute`
(strategies, precision), `tfxfer.plots`.
"""

from tfxfer import data, distribute, methods, plots, transfer
from tfxfer.exporting import export, export_hub_module
from tfxfer.recipes import evaluate_model
from tfxfer.sources import HubFeatures, ImageBackbone, KerasHubFeatures, WordVectors, text_encoder
from tfxfer.sources.registry import Preset, get_preset, preset_path, presets
from tfxfer.tasks import ImageClassifier, MultiTaskClassifier, TextClassifier
from tfxfer.transfer import clone_structure, fine_tune, fit_head, self_train, transfer_weights

__version__ = "0.1.0"

__all__ = [
    "HubFeatures",
    "ImageBackbone",
    "ImageClassifier",
    "KerasHubFeatures",
    "MultiTaskClassifier",
    "Preset",
    "TextClassifier",
    "WordVectors",
    "clone_structure",
    "data",
    "distribute",
    "evaluate_model",
    "export",
    "export_hub_module",
    "fine_tune",
    "fit_head",
    "get_preset",
    "methods",
    "plots",
    "preset_path",
    "presets",
    "self_train",
    "text_encoder",
    "transfer",
    "transfer_weights",
]
