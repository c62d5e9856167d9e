"""tfxfer: transfer learning on Keras 3 / TensorFlow.

Pretrained sources (TF-Hub modules, Keras Applications, word vectors)
become Keras 3 layers; see `HubFeatures`, `ImageBackbone` and `WordVectors`.
"""

from tfxfer import distribute
from tfxfer.export import export, export_hub_module
from tfxfer.sources import HubFeatures, ImageBackbone, WordVectors, embedded_source_path, text_encoder
from tfxfer.tasks import ImageClassifier, TextClassifier
from tfxfer.transfer import fine_tune

__version__ = "0.1.0"
