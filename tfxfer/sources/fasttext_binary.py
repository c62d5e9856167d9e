"""The structure of a fastText `.bin` model, checked before gensim reads it.

gensim reads each vocabulary word byte by byte up to its end marker, and a
file cut inside a word (as an interrupted download leaves it) makes that loop
read empty bytes forever. This walk follows the same layout (fastText's
`args`, `dictionary` and matrix `save` functions, as gensim's
`_fasttext_bin` reads them) with bounded reads, and refuses a file that ends
early, holds negative or impossible counts, or runs past its last matrix.
"""

import os
import struct

from tfxfer.data.limits import ENTRY_BYTES

MAGIC = 793712314
_NEW_HEADER = "@12id"  # dim, ws, epoch, minCount, neg, wordNgrams, loss, model, bucket, minn, maxn, lrUpdateRate, t
_OLD_HEADER = "@10id"  # the same without dim and ws, which take the magic's place
_CHUNK = 1 << 20


class _Reader:
    """Bounded reads from a binary stream, naming the file and offset when it ends early."""

    def __init__(self, file, path, size=None):
        self.file, self.path, self.size = file, path, size  # size: a plain file's, which `skip` seeks over
        self.buffer, self.start, self.offset = b"", 0, 0  # buffer[start:] is unread; offset: bytes consumed

    def _fill(self, needed):
        while len(self.buffer) - self.start < needed:
            chunk = self.file.read(max(_CHUNK, needed))
            if not chunk:
                return False
            self.buffer = self.buffer[self.start :] + chunk
            self.start = 0
        return True

    def _truncated(self, what):
        end = self.offset + len(self.buffer) - self.start
        return ValueError(
            f"'{self.path}' is a truncated fastText .bin file: it ends at byte {end:,} inside {what}; "
            "download it again."
        )

    def unpack(self, layout, what):
        size = struct.calcsize(layout)
        if not self._fill(size):
            raise self._truncated(what)
        values = struct.unpack_from(layout, self.buffer, self.start)
        self.start, self.offset = self.start + size, self.offset + size
        return values

    def skip_word(self, index):
        while (end := self.buffer.find(b"\0", self.start)) < 0:
            if not self._fill(len(self.buffer) - self.start + 1):
                raise self._truncated(f"word {index + 1} of the vocabulary")
        self.offset += end + 1 - self.start
        self.start = end + 1

    def skip(self, size, what):
        if self.size is not None:
            if self.size - self.offset < size:
                raise self._truncated(f"{what} ({size:,} bytes, {self.size - self.offset:,} left)")
            unread = len(self.buffer) - self.start
            if size > unread:
                self.file.seek(self.offset + size)
                self.buffer, self.start, self.offset, size = b"", 0, self.offset + size, 0
        while size:
            if not self._fill(1):
                raise self._truncated(what)
            step = min(size, len(self.buffer) - self.start)
            self.start, self.offset, size = self.start + step, self.offset + step, size - step

    def at_end(self):
        return not self._fill(1)


def _damaged(path, problem):
    return ValueError(f"'{path}' is not a valid fastText .bin model: {problem}. Download it again.")


def check_fasttext_binary(path):
    """Raises ValueError naming `path` unless it holds a whole fastText model."""
    from gensim import utils

    compressed = path.lower().endswith((".gz", ".bz2"))
    with utils.open(path, "rb") as file:
        reader = _Reader(file, path, None if compressed else os.path.getsize(path))
        magic, version = reader.unpack("@2i", "the header")
        new_format = magic == MAGIC
        header = reader.unpack(_NEW_HEADER if new_format else _OLD_HEADER, "the header")
        dim = header[0] if new_format else magic
        vocab_size, words, labels = reader.unpack("@3i", "the vocabulary's counts")
        if labels > 0:
            raise _damaged(path, f"it is a supervised fastText classifier ({labels} labels), not word vectors")
        if dim <= 0 or vocab_size < 0 or not 0 <= words <= vocab_size:
            raise _damaged(path, f"impossible sizes (dimension {dim}, {vocab_size} entries, {words} words)")
        reader.unpack("@q", "the vocabulary's counts")
        pruned = reader.unpack("@q", "the vocabulary's counts")[0] if new_format else 0
        for index in range(vocab_size):
            reader.skip_word(index)
            reader.unpack("@qb", f"word {index + 1} of the vocabulary")
        reader.skip(8 * max(pruned, 0), "the pruned index")
        for matrix in ("input", "output"):
            if new_format:
                reader.unpack("@?", f"the {matrix} matrix")
            rows, columns = reader.unpack("@2q", f"the {matrix} matrix's shape")
            if rows < 0 or columns < 0 or (matrix == "input" and (columns != dim or rows < words)):
                raise _damaged(path, f"the {matrix} matrix has an impossible shape ({rows}, {columns})")
            ENTRY_BYTES.check(4 * rows * columns, path, f"the {matrix} matrix ({rows:,} x {columns:,} float32)")
            reader.skip(4 * rows * columns, f"the {matrix} matrix")
        if not reader.at_end():
            raise _damaged(path, f"bytes follow the output matrix at byte {reader.offset:,}")
