"""Limits on what an untrusted file can make tfxfer read or allocate.

A small file can declare a huge one: a 343-byte `.tar.gz` holding a sparse
1 GiB member, a PNG header of 20000 x 20000 pixels, a vector file whose
header promises a billion rows, a pickle asking for a terabyte array. Each
limit has a default sized for the real datasets with room to spare and an
environment variable that raises it, read at each check (so a notebook can
set `os.environ[...]` too):

| variable | default | bounds |
| --- | --- | --- |
| `TFXFER_MAX_ENTRY_BYTES` | 4 GiB | one archive member, or one array a file declares |
| `TFXFER_MAX_ENTRIES` | 200,000 | the members of one archive |
| `TFXFER_MAX_EXPANSION` | 100 | bytes declared per byte of the file, beyond 64 MiB |
| `TFXFER_MAX_IMAGE_PIXELS` | 89,478,485 | one image's width x height (Pillow's own default) |

Only regular files are read: a FIFO, device or socket would block a read
forever or stream without end, so it is refused by name.
"""

import dataclasses
import os
import stat

from tfxfer.settings import size

# Declared content up to this size is allowed whatever the file's size.
EXPANSION_ALLOWANCE = 64 << 20


class LimitError(ValueError):
    """A file that declares more than a limit allows."""


@dataclasses.dataclass(frozen=True)
class Limit:
    variable: str
    default: int
    unit: str

    def value(self):
        return size(self.variable, self.default)

    def check(self, amount, origin, what):
        """Refuses `amount` above the limit, naming `origin`, `what` it is
        and the variable that raises the limit."""
        limit = self.value()
        if amount > limit:
            raise LimitError(
                f"'{origin}': {what} declares {amount:,} {self.unit}, above the limit of {limit:,}. A damaged "
                f"or hostile file; if you trust it, set {self.variable} to a larger number."
            )


ENTRY_BYTES = Limit("TFXFER_MAX_ENTRY_BYTES", 4 << 30, "bytes")
ENTRIES = Limit("TFXFER_MAX_ENTRIES", 200_000, "members")
EXPANSION = Limit("TFXFER_MAX_EXPANSION", 100, "bytes")
IMAGE_PIXELS = Limit("TFXFER_MAX_IMAGE_PIXELS", 89_478_485, "pixels")


def check_expansion(declared, file_bytes, origin, what):
    """Refuses `declared` bytes from a file of `file_bytes` beyond
    `TFXFER_MAX_EXPANSION` times its size (and the 64 MiB allowance)."""
    ratio = EXPANSION.value()
    if declared > max(ratio * file_bytes, EXPANSION_ALLOWANCE):
        raise LimitError(
            f"'{origin}': {what} declares {declared:,} bytes from a {file_bytes:,}-byte file, more than "
            f"{ratio} times its size (a decompression bomb?). If you trust the file, set "
            f"TFXFER_MAX_EXPANSION to a larger ratio."
        )


_KINDS = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}


def check_regular_file(path):
    """Refuses a FIFO, device or socket (links followed) by name, before it
    is opened: reading one can block or never end. A missing path or a
    folder passes, for the caller's own message."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS.items() if test(mode)), "a socket" if stat.S_ISSOCK(mode) else None)
        if kind:
            raise ValueError(f"'{path}' is {kind}, not a regular file: tfxfer reads only files. Remove it.")


class ArchiveBudget:
    """Counts the members of one archive as they are read, refusing one
    too large, one too many, or more declared content than the archive's
    size allows (`TFXFER_MAX_ENTRY_BYTES`, `_ENTRIES`, `_EXPANSION`)."""

    def __init__(self, path):
        self.path, self.file_bytes = path, os.path.getsize(path)
        self.count = self.declared = 0

    def admit(self, member):
        self.count += 1
        ENTRIES.check(self.count, self.path, "the archive")
        if member.isfile():
            ENTRY_BYTES.check(member.size, self.path, f"member '{member.name}'")
            self.declared += member.size
            check_expansion(self.declared, self.file_bytes, self.path, f"member '{member.name}' (with those before)")
        return member


def check_npz(path):
    """Refuses an `.npz` whose members, or the arrays their headers
    declare, are beyond the limits, before numpy allocates any of them."""
    import zipfile

    import numpy as np

    file_bytes, declared = os.path.getsize(path), 0
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        ENTRIES.check(len(members), path, "the archive")
        for member in members:
            ENTRY_BYTES.check(member.file_size, path, f"member '{member.filename}'")
            declared += member.file_size
            check_expansion(declared, file_bytes, path, f"member '{member.filename}' (with those before)")
            with archive.open(member) as file:
                version = np.lib.format.read_magic(file)
                # Versions 2 and 3 differ from 1 only in the header's length field.
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read_header(file)
            array_bytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if array_bytes > member.file_size:
                raise LimitError(
                    f"'{path}': array '{member.filename}' declares shape {shape} of {dtype} ({array_bytes:,} bytes) "
                    f"but its member holds {member.file_size:,}: the file is damaged. Write it again."
                )
