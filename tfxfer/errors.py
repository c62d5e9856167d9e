"""tfxfer's own failures that are not bad arguments (those are ValueErrors):
the CLI reports each in one line (`tfxfer.cli.one_line_error`). Light to
import: the CLI reads it before TensorFlow."""


class MissingPackageError(ImportError):
    """An optional package a feature needs is not installed; the message says how to install it."""


class ExportRefusedError(RuntimeError):
    """An exported file failed its check against the Keras model; nothing was kept."""
