"""Pretrained sources as Keras 3 layers: TF-Hub modules, Keras Applications."""

from tfxfer.sources.applications import ImageBackbone
from tfxfer.sources.embedded import embedded_source_path
from tfxfer.sources.hub import HubFeatures
