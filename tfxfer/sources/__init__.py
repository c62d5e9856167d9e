"""Pretrained sources as Keras 3 layers: TF-Hub modules, KerasHub presets
(and Hugging Face / sentence-transformers encoder folders), Keras
Applications, word vectors; `HybridTextFeatures` (TF-IDF beside a sentence
encoder); `feature_extractor`, the architecture of
the shipped digits source, for from-scratch baselines."""

from tfxfer.sources.applications import ImageBackbone
from tfxfer.sources.embedded import feature_extractor
from tfxfer.sources.hub import HubFeatures
from tfxfer.sources.hybrid import HybridTextFeatures
from tfxfer.sources.kerashub import KerasHubFeatures
from tfxfer.sources.text_encoding import text_encoder
from tfxfer.sources.word_vectors import WordVectors

__all__ = [
    "HubFeatures",
    "HybridTextFeatures",
    "ImageBackbone",
    "KerasHubFeatures",
    "WordVectors",
    "feature_extractor",
    "text_encoder",
]
