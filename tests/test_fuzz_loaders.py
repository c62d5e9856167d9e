"""Fuzzed files into the loaders (hypothesis): whatever the bytes, a loader
either reads them or raises ValueError naming the file, never an
IndexError, UnicodeDecodeError, struct.error or a crash from deep inside."""

import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tfxfer.data.cifar10 import load_cifar10
from tfxfer.data.newsgroups import load_20newsgroups
from tfxfer.sources.word_vectors import WordVectors

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _write(suffix, content):
    handle, path = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(handle, "wb") as file:
        file.write(content)
    return path


def _only_value_errors(load, path):
    try:
        load(path)
    except ValueError as error:
        assert os.path.basename(path) in str(error), f"the message does not name the file: {error}"
    finally:
        os.remove(path)


# Text vector files: a plausible header and lines of words and numbers, with damage.
_word = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=6)
_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(["", "x", "1e", "--1"]))
_line = st.builds(lambda w, ns: " ".join([w, *ns]), _word, st.lists(_number, max_size=5))
_vector_text = st.builds(
    lambda header, lines: "\n".join([header, *lines]),
    st.sampled_from(["", "3 2", "2 3", "x y", "-1 2", "3"]),
    st.lists(_line, max_size=6),
)


@FUZZ
@given(_vector_text)
def test_text_vector_files(text):
    _only_value_errors(WordVectors.load, _write(".txt", text.encode("utf-8", "surrogatepass")))


@FUZZ
@given(st.binary(max_size=400))
def test_binary_vector_files(content):
    _only_value_errors(WordVectors.load, _write(".bin", b"3 4\n" + content))


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_as_vectors(content):
    _only_value_errors(WordVectors.load, _write(".vec", content))


@FUZZ
@given(st.binary(max_size=600))
def test_cifar10_archives_and_npz(content):
    _only_value_errors(load_cifar10, _write(".tar.gz", content))
    _only_value_errors(load_cifar10, _write(".npz", content))


@FUZZ
@given(st.binary(max_size=600))
def test_newsgroups_archives(content):
    _only_value_errors(lambda path: load_20newsgroups(path), _write(".tar.gz", content))


@FUZZ
@given(st.lists(st.integers(0, 255), min_size=0, max_size=3 * 32 * 32 * 3), st.integers(0, 3))
def test_cifar10_npz_with_odd_arrays(values, rank):
    images = np.array(values, dtype=np.uint8)
    shapes = {0: (-1,), 1: (-1, 1), 2: (-1, 32, 32, 3), 3: (-1, 32, 3)}
    try:
        images = images.reshape(shapes[rank])
    except ValueError:
        images = images.reshape(-1)
    handle, path = tempfile.mkstemp(suffix=".npz")
    os.close(handle)
    np.savez(path, x_train=images, y_train=np.arange(len(images)) % 10)
    _only_value_errors(load_cifar10, path)


def _tar_gz(members):
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _cifar_archive():
    import pickle

    from tfxfer.data.cifar10 import FOLDER, TEST_BATCH, TRAIN_BATCHES

    def batch(n):
        return pickle.dumps({b"labels": [1] * n, b"data": np.zeros((n, 3072), np.uint8)}, protocol=2)

    return _tar_gz({f"{FOLDER}/{name}": batch(2) for name in (*TRAIN_BATCHES, TEST_BATCH)})


NEWS = _tar_gz(
    {
        f"20news-bydate-{split}/sci.space/{i}": f"Subject: post {i}\n\nwords {i}\n".encode()
        for split in ("train", "test")
        for i in range(3)
    }
)
CIFAR = _cifar_archive()


def _damaged(archive, cut, flip):
    """`archive` cut short at `cut` (a fraction) with the byte at `flip` inverted."""
    data = bytearray(archive[: max(1, int(len(archive) * cut))])
    position = int(flip * (len(data) - 1))
    data[position] ^= 0xFF
    return bytes(data)


@FUZZ
@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
@example(cut=0.7265625, flip=0.7265625)  # a flipped size byte: MemoryError inside pickle, once
def test_damaged_archives(cut, flip):
    _only_value_errors(lambda path: load_20newsgroups(path), _write(".tar.gz", _damaged(NEWS, cut, flip)))
    _only_value_errors(load_cifar10, _write(".tar.gz", _damaged(CIFAR, cut, flip)))


def test_a_fasttext_bin_cut_at_every_byte_is_refused_in_time(tmp_path):
    from test_word_vectors import _fasttext_file

    from helpers import time_limit

    data = _fasttext_file(tmp_path / "model.bin").read_bytes()
    cut_file = tmp_path / "cut.bin"
    with time_limit(120):  # gensim alone loops forever on a file cut inside a word
        for cut in range(4, len(data)):  # 4 bytes: the magic number that marks a fastText file
            cut_file.write_bytes(data[:cut])
            with pytest.raises(ValueError, match="cut.bin"):
                WordVectors.load(cut_file)


def _encoded(suffix):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buffer, format={".jpg": "JPEG"}.get(suffix, suffix[1:].upper()))
    return buffer.getvalue()


GOOD_IMAGES = {suffix: _encoded(suffix) for suffix in (".png", ".jpg", ".gif", ".bmp")}


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(sorted(GOOD_IMAGES)), st.integers(0, 60))
def test_image_folders_with_any_bytes_as_an_image(content, suffix, kept):
    """A real image's first `kept` bytes (its header, in part), then any bytes."""
    from tfxfer.data import load_image_folder

    with tempfile.TemporaryDirectory() as root:
        for name in ("cat", "dog"):
            os.mkdir(os.path.join(root, name))
            with open(os.path.join(root, name, f"ok{suffix}"), "wb") as file:
                file.write(GOOD_IMAGES[suffix])
        with open(os.path.join(root, "dog", f"fuzzed{suffix}"), "wb") as file:
            file.write(GOOD_IMAGES[suffix][:kept] + content)
        try:
            images, labels, _ = load_image_folder(root, (8, 8))
            assert images.shape == (3, 8, 8, 3) and images.dtype == np.uint8
        except ValueError as error:
            assert f"fuzzed{suffix}" in str(error), f"the message does not name the file: {error}"


# Tables (CSV, TSV, JSON Lines): plausible headers and rows, with damage (quotes, bytes, short rows).
_cell = st.one_of(st.text(max_size=8), st.sampled_from(['"', '""', "a,b", "\t", "é", "a|b", ""]))
_row = st.lists(_cell, min_size=0, max_size=4)
_table = st.builds(
    lambda header, rows, tail: (
        "\n".join([header, *(",".join(r) for r in rows)]).encode("utf-8", "surrogatepass") + tail
    ),
    st.sampled_from(["text,label", "label,text", "body", "", "text,label,extra", '"text",label']),
    st.lists(_row, max_size=6),
    st.sampled_from([b"", b"\xff\xfe", b"\n\xe9", b'\n"unclosed']),
)


@FUZZ
@given(_table, st.sampled_from([".csv", ".tsv", ".jsonl"]), st.booleans())
def test_tables(content, suffix, multi_label):
    from tfxfer.data.tables import read_table

    def read(path):
        try:
            read_table(path, "text", multi_label=multi_label).encoded()
        except FileNotFoundError:  # no file is named missing here: none is
            raise AssertionError("a table's own path was called missing") from None

    _only_value_errors(read, _write(suffix, content))


@FUZZ
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["text", "label", "x"]),
            st.one_of(st.text(max_size=5), st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=3)),
            max_size=3,
        ),
        max_size=5,
    )
)
def test_json_lines_of_any_fields(rows):
    import json

    from tfxfer.data.tables import read_table

    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    _only_value_errors(lambda path: read_table(path, "text", multi_label=True).encoded(), _write(".jsonl", content))


# Environment values: any text in any variable tfxfer reads gives a value of the
# expected kind, or a SettingError naming the variable and the value.
_env_text = st.one_of(  # what an environment can hold: no NUL, no lone surrogate
    st.text(alphabet=st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=12),
    st.sampled_from(["4GiB", "4 GiB", "200,000", "1.5k", "inf", "nan", "-1", "0", "1e9", "0x10", "  ", "1 TB", "ÿ"]),
)


@FUZZ
@given(text=_env_text)
def test_any_environment_value_is_read_or_named(text):
    from tfxfer import settings as env

    readers = {
        "TFXFER_MAX_ENTRY_BYTES": lambda: env.size("TFXFER_MAX_ENTRY_BYTES", 7),
        "TFXFER_VERBOSE": env.show_tensorflow_logs,
        "TF_CONFIG": env.tf_config,
        "TFXFER_CACHE": lambda: env.cache_folder("features"),
    }
    for name, read in readers.items():
        saved = os.environ.get(name)
        os.environ[name] = text
        try:
            value = read()
        except env.SettingError as error:
            assert f"{name}={text!r}" in str(error)
        else:
            if not text.strip():  # empty counts as unset
                assert value in (7, False, None) or name == "TFXFER_CACHE"
            elif name == "TFXFER_MAX_ENTRY_BYTES":
                assert isinstance(value, int) and value >= 1
            elif name == "TF_CONFIG":
                assert isinstance(value, dict)
            elif name == "TFXFER_CACHE":
                assert value == os.path.expanduser(text)
        finally:
            os.environ.pop(name) if saved is None else os.environ.__setitem__(name, saved)
