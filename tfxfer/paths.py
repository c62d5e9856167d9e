"""Where Keras keeps its downloads (read when called, as Keras itself does at import)."""

import os


def keras_cache_folder(subdir):
    """`$KERAS_HOME/<subdir>`, `~/.keras/<subdir>` by default."""
    home = os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))
    return os.path.join(os.path.expanduser(home), subdir)
