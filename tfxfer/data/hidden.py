"""Hidden files and folders (`.ipynb_checkpoints`, `.DS_Store`, `.git`) are
no class and no example: every loader of folders leaves them out, saying so."""

from tfxfer.log import logger


def visible(names, folder):
    """`names` (entries of `folder`) without the hidden ones, with a notice naming those."""
    hidden = sorted(name for name in names if name.startswith("."))
    if hidden:
        logger.warning(f"'{folder}': skipping hidden {', '.join(hidden)}")
    return [name for name in names if not name.startswith(".")]
