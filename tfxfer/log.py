"""tfxfer's one output channel: the `tfxfer` logger.

What the strategies say (the plan of a stage, each self-training round, a
notice) goes to `logging.getLogger("tfxfer")`: INFO lines to standard
output and warnings to standard error, as plain text, through one handler
tfxfer adds the first time it is imported (the way TensorFlow's own logger
does). Records also reach the application's handlers. `set_verbosity`
sets the level: `"warning"` keeps only notices, `"error"` silences them;
a call's own `verbose=0` still says nothing at all.
"""

import logging
import sys

__all__ = ["logger", "say", "set_verbosity"]

logger = logging.getLogger("tfxfer")


class _ConsoleHandler(logging.Handler):
    """INFO to the current `sys.stdout`, warnings and errors to `sys.stderr`
    (looked up at each record, so notebooks and redirections see them)."""

    def emit(self, record):
        stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed stream: nothing to say it on
            self.handleError(record)


def _install():
    if not any(isinstance(handler, _ConsoleHandler) for handler in logger.handlers):
        logger.addHandler(_ConsoleHandler())
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def set_verbosity(level):
    """`"info"` (default), `"warning"`, `"error"`, or a `logging` level."""
    logger.setLevel(level.upper() if isinstance(level, str) else level)


def say(verbose, message):
    """Logs `message` at INFO when `verbose` (a call's own verbosity) is on."""
    if verbose:
        logger.info(message)


_install()
