"""What a local data path held when a run read it, to tell later whether it
still holds the same: a file by its size and SHA-256, a folder by its files'
names and sizes (hashing every image of a large folder would cost more than
the check is worth; an edit that keeps every size goes unseen there).

A run records `fingerprint` of its `--data` and `--test-data`; `evaluate`
(and a rerun in the same folder) compares them with `changes` before
trusting that the run's test split is still the one it was tested on.

>>> import tempfile, os
>>> folder = tempfile.mkdtemp()
>>> path = os.path.join(folder, "d.csv")
>>> _ = open(path, "w").write("text,label\\nhi,a\\n")
>>> before = fingerprint(path)
>>> _ = open(path, "a").write("yo,b\\n")
>>> changes({"data": path}, {"data": before})  # doctest: +ELLIPSIS
["'...d.csv' (--data) changed since the run read it: 16 bytes then, 21 now"]
"""

import hashlib
import os

OPTIONS = {"data": "--data", "test_data": "--test-data"}


def fingerprint(path):
    """`{"kind", "bytes", "sha256"}` of a file, `{"kind", "files", "bytes",
    "sha256"}` of a folder (over its files' relative names and sizes)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        listing = hashlib.sha256()
        files = total = 0
        for folder, folders, names in os.walk(path):
            folders.sort()
            for name in sorted(names):
                file = os.path.join(folder, name)
                size = os.path.getsize(file) if os.path.isfile(file) else 0
                listing.update(f"{os.path.relpath(file, path)}\0{size}\n".encode("utf-8", "surrogateescape"))
                files, total = files + 1, total + size
        return {"kind": "folder", "files": files, "bytes": total, "sha256": listing.hexdigest()}
    content = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            content.update(block)
    return {"kind": "file", "bytes": os.path.getsize(path), "sha256": content.hexdigest()}


def fingerprints(paths):
    """`{name: fingerprint}` of those of `paths` (`{name: path or None}`) that are local files or folders."""
    return {name: fingerprint(path) for name, path in paths.items() if isinstance(path, str) and os.path.exists(path)}


def changes(paths, recorded, current=None):
    """One line for each of `paths` whose `recorded` fingerprint no longer
    matches what is there (or that is gone). `current`: their
    `fingerprints`, where the caller has them already (a file is read once)."""
    current = current or {}
    lines = []
    for name, before in (recorded or {}).items():
        path = paths.get(name)
        where = f"'{path}' ({OPTIONS.get(name, name)})"
        if not path or not os.path.exists(path):
            lines.append(f"{where} is gone since the run read it")
            continue
        now = current.get(name) or fingerprint(path)
        if now == before:
            continue
        if before.get("kind") == "folder" and now.get("kind") == "folder" and before.get("files") != now.get("files"):
            lines.append(f"{where} changed since the run read it: {before['files']:,} files then, {now['files']:,} now")
        elif before.get("bytes") != now.get("bytes"):
            lines.append(f"{where} changed since the run read it: {before['bytes']:,} bytes then, {now['bytes']:,} now")
        else:
            lines.append(f"{where} changed since the run read it: same size, other content")
    return lines
