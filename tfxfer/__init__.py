"""tfxfer: transfer learning on Keras 3 / TensorFlow.

Pretrained sources (TF-Hub modules, Keras Applications) become Keras 3
layers; see `HubFeatures` and `ImageBackbone`.
"""

from tfxfer.export import export, export_hub_module
from tfxfer.sources import HubFeatures, ImageBackbone, embedded_source_path
from tfxfer.tasks import ImageClassifier
from tfxfer.transfer import fine_tune

__version__ = "0.1.0"
