"""Limits on untrusted files: what a small file may declare (archive members,
arrays, image sizes), and only regular files read. Each refusal names the
file and the variable that raises the limit; raised, the file loads."""

import io
import os
import pickle
import struct
import tarfile
import time
import zipfile
import zlib

import numpy as np
import pytest

from tfxfer.data import load_20newsgroups, load_cifar10, load_image_folder
from tfxfer.data.limits import LimitError
from tfxfer.sources.word_vectors import WordVectors

from helpers import time_limit

GIB = 1 << 30


def _archive(path, members):
    """A .tar.gz of `{name: bytes}`, and of `{name: int}`: a header
    declaring that many bytes with none behind it (as a sparse member)."""
    with tarfile.open(path, "w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, int):
                info.size = content
                archive.fileobj.write(info.tobuf(format=tarfile.GNU_FORMAT))
                archive.offset += tarfile.BLOCKSIZE
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return path


def _posts(count):
    return {f"20news-bydate-train/{group}/{i}": b"From: a\n\nabout orbits " * 5 for i in range(count) for group in "ab"}


def test_an_archive_member_declaring_a_gibibyte_is_refused_before_reading(tmp_path):
    news = _archive(tmp_path / "news.tar.gz", {**_posts(1), "20news-bydate-train/a/big": GIB})
    assert os.path.getsize(news) < 1000
    started = time.perf_counter()
    with pytest.raises(LimitError, match=r"news.tar.gz': member '20news-bydate-train/a/big'.*TFXFER_MAX_EXPANSION"):
        load_20newsgroups(news)
    assert time.perf_counter() - started < 5
    cifar = _archive(tmp_path / "cifar-10-python.tar.gz", {"cifar-10-batches-py/data_batch_1": GIB})
    with pytest.raises(LimitError, match="cifar-10-python.tar.gz': member 'cifar-10-batches-py/data_batch_1'"):
        load_cifar10(cifar)


def test_member_count_and_size_limits_refuse_and_can_be_raised(tmp_path, monkeypatch):
    news = _archive(tmp_path / "news.tar.gz", _posts(2))  # 4 posts
    assert len(load_20newsgroups(news).data) == 4
    monkeypatch.setenv("TFXFER_MAX_ENTRIES", "3")
    with pytest.raises(LimitError, match=r"news.tar.gz': the archive declares 4 members.*TFXFER_MAX_ENTRIES"):
        load_20newsgroups(news)
    monkeypatch.setenv("TFXFER_MAX_ENTRIES", "4")
    monkeypatch.setenv("TFXFER_MAX_ENTRY_BYTES", "50")
    with pytest.raises(LimitError, match=r"declares 110 bytes, above the limit of 50.*TFXFER_MAX_ENTRY_BYTES"):
        load_20newsgroups(news)
    monkeypatch.setenv("TFXFER_MAX_ENTRY_BYTES", "110")
    assert len(load_20newsgroups(news).data) == 4
    monkeypatch.setenv("TFXFER_MAX_ENTRY_BYTES", "many")
    with pytest.raises(ValueError, match="TFXFER_MAX_ENTRY_BYTES='many' is not a positive whole number"):
        load_20newsgroups(news)


def _npy(shape, data=b""):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + data


def test_npz_arrays_are_bounded_before_numpy_allocates_them(tmp_path):
    declared = tmp_path / "declared.npz"
    with zipfile.ZipFile(declared, "w") as archive:
        archive.writestr("x_train.npy", _npy((10**6, 96, 96, 3), b"\0" * 100))
        archive.writestr("y_train.npy", _npy((10**6,), b"\0" * 100))
    with pytest.raises(LimitError, match=r"array 'x_train.npy' declares shape \(1000000, 96, 96, 3\).*damaged"):
        load_cifar10(declared)
    bomb = tmp_path / "bomb.npz"  # 80 MiB of zeros, deflated to a small file
    np.savez_compressed(bomb, x_train=np.zeros((27_307, 32, 32, 3), np.uint8), y_train=np.zeros(27_307, np.uint8))
    assert os.path.getsize(bomb) < 1 << 20
    with pytest.raises(LimitError, match=r"bomb.npz': member 'x_train.npy'.*more than 100 times.*TFXFER_MAX_EXPANSION"):
        load_cifar10(bomb)


class _Reduced:
    """Pickles as `function(*arguments)`, as a hostile file would."""

    def __init__(self, function, *arguments):
        self.reduced = (function, arguments)

    def __reduce__(self):
        return self.reduced


def test_a_pickled_array_larger_than_its_pickle_is_refused_before_allocation(tmp_path):
    make, (cls, _, code) = np.zeros(1).__reduce__()[:2]  # numpy's _reconstruct(ndarray, shape, dtype code)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, payload in {
        "shape": _Reduced(make, cls, (10**12,), code),
        "direct": _Reduced(np.ndarray, (10**12,)),
    }.items():
        (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": payload, b"labels": [0]}, protocol=2))
        message = "cannot hold its data" if name == "shape" else "calls numpy.ndarray directly"
        with pytest.raises(ValueError, match=rf"data_batch_1' is not a CIFAR-10 batch.*{message}"):
            load_cifar10(tmp_path)


def _png_header(width, height):
    """A PNG signature and header chunk declaring `width` x `height`, no pixels."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def _image_folder(root, count=2, size=16):
    import keras

    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            keras.utils.save_img(root / name / f"{i}.png", np.full((size, size, 3), 40 * i, np.uint8))
    return root


def test_an_image_header_over_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    root = _image_folder(tmp_path / "images")
    (root / "dog" / "huge.png").write_bytes(_png_header(20_000, 20_000))  # 87 bytes
    with pytest.raises(LimitError, match=r"huge.png': Image size \(400000000 pixels\) exceeds limit.*Not decoded"):
        load_image_folder(root, (16, 16))
    (root / "dog" / "huge.png").write_bytes(_png_header(10_000, 10_000))
    with pytest.raises(LimitError, match=r"huge.png': an image of 10000 x 10000 declares 100,000,000 pixels"):
        load_image_folder(root, (16, 16))
    os.remove(root / "dog" / "huge.png")
    monkeypatch.setenv("TFXFER_MAX_IMAGE_PIXELS", "255")
    with pytest.raises(LimitError, match="an image of 16 x 16 declares 256 pixels.*TFXFER_MAX_IMAGE_PIXELS"):
        load_image_folder(root, (16, 16))
    monkeypatch.setenv("TFXFER_MAX_IMAGE_PIXELS", "256")
    images, labels, names = load_image_folder(root, (16, 16))
    assert images.shape == (4, 16, 16, 3) and names == ["cat", "dog"]


def test_an_empty_class_folder_is_refused_by_name(tmp_path):
    root = _image_folder(tmp_path / "images")
    (root / "bird").mkdir()
    (root / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    with pytest.raises(ValueError, match=r"class folders without images: \['bird'\]"):
        load_image_folder(root, (16, 16))


def test_fifos_and_devices_are_refused_by_name_never_read(tmp_path):
    root = _image_folder(tmp_path / "images")
    os.mkfifo(root / "dog" / "x.jpg")
    news = tmp_path / "20news-bydate-train"
    for group in "ab":
        (news / group).mkdir(parents=True)
        (news / group / "1").write_text("about orbits")
    os.mkfifo(news / "a" / "2")
    os.mkfifo(tmp_path / "vectors.txt")
    with time_limit(60):
        with pytest.raises(ValueError, match=r"x.jpg' is a FIFO \(named pipe\), not a regular file"):
            load_image_folder(root, (16, 16))
        with pytest.raises(ValueError, match=r"20news-bydate-train/a/2' is a FIFO"):
            load_20newsgroups(news)
        with pytest.raises(ValueError, match=r"vectors.txt' is a FIFO"):
            WordVectors.load(tmp_path / "vectors.txt")
        os.remove(news / "a" / "2")
        os.symlink("/dev/zero", news / "a" / "2")  # a link to a device: endless zeros
        with pytest.raises(ValueError, match=r"20news-bydate-train/a/2' is a character device"):
            load_20newsgroups(news)


def test_links_pipes_and_devices_inside_an_archive_are_never_read(tmp_path):
    news = tmp_path / "news.tar.gz"
    with tarfile.open(news, "w:gz") as archive:
        for name, content in _posts(1).items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        for kind, extra in (
            (tarfile.FIFOTYPE, {}),
            (tarfile.CHRTYPE, {}),
            (tarfile.SYMTYPE, {"linkname": "/dev/zero"}),
        ):
            info = tarfile.TarInfo(f"20news-bydate-train/a/special{kind.decode()}")
            info.type = kind
            for attribute, value in extra.items():
                setattr(info, attribute, value)
            archive.addfile(info)
    with time_limit(60):
        posts = load_20newsgroups(news)
    assert sorted(posts.filenames) == ["20news-bydate-train/a/0", "20news-bydate-train/b/0"]


def test_the_cli_refuses_a_fifo_as_data_in_one_line(tmp_path):
    from click.testing import CliRunner

    from tfxfer.cli import main

    os.mkfifo(tmp_path / "train.npz")
    with time_limit(60):
        for kind in ("image", "text"):
            result = CliRunner().invoke(
                main, ["fit", kind, "--data", str(tmp_path / "train.npz"), "--run-dir", str(tmp_path / "run")]
            )
            assert result.exit_code == 1 and "train.npz' is a FIFO (named pipe), not a regular file" in result.output
            assert len(result.output.strip().splitlines()) == 1
