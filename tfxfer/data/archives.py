"""One error for a damaged archive, whatever layer notices it first."""

import contextlib
import tarfile
import zlib

# What tarfile, gzip, bz2 and lzma raise on truncated or corrupted data.
DAMAGE = (tarfile.TarError, EOFError, OSError, zlib.error)


@contextlib.contextmanager
def reading_archive(path, fix="download it again"):
    """Turns the errors of a truncated or corrupted archive read inside the
    block into a ValueError naming `path` and the `fix`."""
    try:
        yield
    except DAMAGE as error:
        raise ValueError(f"'{path}' is damaged ({type(error).__name__}: {error}); {fix}.") from error


def is_tar_archive(path, fix="download it again"):
    """`tarfile.is_tarfile`, which itself raises on a truncated compressed file."""
    with reading_archive(path, fix):
        return tarfile.is_tarfile(path)


def checked_members(archive, path):
    """The members of the open tar `archive` (read from `path`), each
    admitted by the limits on size, count and expansion (`tfxfer.data.limits`)."""
    from tfxfer.data.limits import ArchiveBudget

    budget = ArchiveBudget(path)
    for member in archive:
        yield budget.admit(member)
