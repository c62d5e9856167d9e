"""Datasets in the formats users have, and tf.data pipelines."""
