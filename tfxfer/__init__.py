"""tfxfer: transfer learning on Keras 3 / TensorFlow.

Pretrained sources (TF-Hub modules, Keras Applications) become Keras 3
layers; see `HubFeatures` and `ImageBackbone`.
"""

from tfxfer.export import export_hub_module
from tfxfer.sources import HubFeatures, ImageBackbone, embedded_source_path

__version__ = "0.1.0"
