"""Task models: a pretrained source plus a head, trained end to end."""

from tfxfer.tasks.image_classifier import ImageClassifier
from tfxfer.tasks.multi_task import MultiTaskClassifier
from tfxfer.tasks.task import Task
from tfxfer.tasks.text_classifier import TextClassifier

__all__ = ["ImageClassifier", "MultiTaskClassifier", "Task", "TextClassifier"]
