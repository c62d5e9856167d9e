"""Files written whole or not at all."""

import json
import os


def write_atomically(path, write):
    """Calls `write(temporary_path)`, then renames the file to `path`: a
    reader (or a rerun after a kill) sees the old file or the new one.
    The temporary name keeps `path`'s suffixes (Keras checks them)."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".partial-{os.getpid()}-{name}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_json(path, content):
    """`content` as indented JSON at `path`, written atomically."""

    def write(temporary):
        with open(temporary, "w") as file:
            json.dump(content, file, indent=2, default=float)

    write_atomically(path, write)
