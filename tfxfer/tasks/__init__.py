"""Task models: a pretrained source plus a head, trained end to end."""

from tfxfer.tasks.image_classifier import ImageClassifier
