"""20 Newsgroups loaders on small archives generated in the real layout."""

import codecs
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
from sklearn.utils import Bunch

from tfxfer._compat import newsgroup_strippers
from tfxfer.data.newsgroups import SKLEARN_CACHE, load_20newsgroups, load_mini_newsgroup

GROUPS = ["comp.graphics", "rec.autos", "sci.space"]
POSTS = {"train": 3, "test": 2}


def _post(group, number):
    return (
        f"From: user{number}@example.edu (Some One)\nSubject: Re: about {group}\n"
        f"Organization: Example U\nLines: 9\n\n"
        f"In article <{number}@x.edu> someone writes:\n> quoted line {number}\n|> more quoted\n"
        f"My own words on {group}, caf\xe9 number {number}.\n\n--\nSigned, user{number}\n"
    )


def _layout():
    return {
        (split, group, str(50000 + 10 * g + i)): _post(group, i)
        for split, count in POSTS.items()
        for g, group in enumerate(GROUPS)
        for i in range(count)
    }


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("news") / "20news-bydate.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for (split, group, name), text in _layout().items():
            _add(tar, f"20news-bydate-{split}/{group}/{name}", text.encode("latin-1"))
    return path


def test_archive_counts_order_and_latin1(archive):
    train = load_20newsgroups(archive, "train")
    test = load_20newsgroups(archive, "test")
    both = load_20newsgroups(archive, "all")
    assert (len(train.data), len(test.data), len(both.data)) == (9, 6, 15)
    assert train.target_names == GROUPS
    np.testing.assert_array_equal(train.target, np.repeat([0, 1, 2], 3))
    assert train.data[0] == _post("comp.graphics", 0)  # café decoded as latin-1
    assert train.filenames[4] == "20news-bydate-train/rec.autos/50011"
    assert both.data[9:] == test.data


def test_removal_is_scikit_learns(archive):
    raw = load_20newsgroups(archive, "test").data
    stripped = load_20newsgroups(archive, "test", remove=("headers", "footers", "quotes")).data
    expected = list(raw)
    for _, strip in newsgroup_strippers():
        expected = [strip(t) for t in expected]
    assert stripped == expected
    assert "From:" not in stripped[0] and "> quoted" not in stripped[0] and "Signed" not in stripped[0]
    assert "My own words on comp.graphics" in stripped[0]
    with pytest.raises(ValueError, match=r"remove takes.*\['signatures'\]"):
        load_20newsgroups(archive, remove=("signatures",))


def test_extracted_folders_equal_the_archive(archive, tmp_path):
    for (split, group, name), text in _layout().items():
        folder = tmp_path / f"20news-bydate-{split}" / group
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(text.encode("latin-1"))
    from_folders = load_20newsgroups(tmp_path, "all", remove="headers")
    from_archive = load_20newsgroups(archive, "all", remove="headers")
    assert from_folders.data == from_archive.data
    np.testing.assert_array_equal(from_folders.target, from_archive.target)
    alone = load_20newsgroups(tmp_path / "20news-bydate-train", "train")  # the split folder itself
    assert len(alone.data) == 9
    with pytest.raises(ValueError, match="has no 20news-bydate-test"):
        load_20newsgroups(tmp_path / "20news-bydate-train", "test")


def test_an_archive_member_escaping_its_folder_is_refused(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        _add(tar, "20news-bydate-train/sci.space/1", b"fine")
        _add(tar, "20news-bydate-train/../../escaped", b"bad")
    with pytest.raises(ValueError, match="points outside the archive's folder"):
        load_20newsgroups(evil)
    assert sorted(os.listdir(tmp_path)) == ["evil.tar.gz"]  # nothing written


def _sklearn_cache(folder, payload):
    folder.mkdir(exist_ok=True)
    (folder / SKLEARN_CACHE).write_bytes(codecs.encode(pickle.dumps(payload), "zlib_codec"))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_scikit_learn_cache_read_safely(tmp_path):
    layout = _layout()

    def bunch(split):
        keys = [k for k in layout if k[0] == split]
        return Bunch(
            data=[layout[k] for k in keys],
            target=np.array([GROUPS.index(k[1]) for k in keys]),
            target_names=GROUPS,
            filenames=np.array([f"/home/u/scikit_learn_data/20news_home/{k[1]}/{k[2]}" for k in keys]),
        )

    _sklearn_cache(tmp_path / "good", {"train": bunch("train"), "test": bunch("test")})
    loaded = load_20newsgroups(subset="test", data_home=str(tmp_path / "good"))
    assert len(loaded.data) == 6 and loaded.target_names == GROUPS
    assert loaded.data[-1] == _post("sci.space", 1)
    _sklearn_cache(tmp_path / "bad", {"train": _Evil(), "test": bunch("test")})
    with pytest.raises(ValueError, match="refused to load posix.system.*delete it"):
        load_20newsgroups(data_home=str(tmp_path / "bad"))


def test_gensims_mini_newsgroup_sample():
    sample = load_mini_newsgroup()
    assert len(sample.data) == 200 and sample.target_names == ["alt.atheism", "sci.space"]
    assert np.bincount(sample.target).tolist() == [100, 100]
    assert sample.data[0].startswith("Newsgroups: alt.atheism")


def test_hidden_folders_and_files_are_no_newsgroups_or_posts(tmp_path, caplog):
    """A notebook's `.ipynb_checkpoints/` beside the groups (and a `.DS_Store`
    among the posts) was read as a 21st class; now skipped with a notice,
    in folders and archives alike."""
    layout = {**_layout(), ("train", ".ipynb_checkpoints", "50000"): "x", ("train", "sci.space", ".DS_Store"): "y"}
    archive = tmp_path / "20news-bydate.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for (split, group, name), text in layout.items():
            _add(tar, f"20news-bydate-{split}/{group}/{name}", text.encode("latin-1"))
            folder = tmp_path / "folders" / f"20news-bydate-{split}" / group
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(text.encode("latin-1"))
    with caplog.at_level("WARNING", logger="tfxfer"):
        from_folders = load_20newsgroups(tmp_path / "folders", "train")
    from_archive = load_20newsgroups(archive, "train")
    for posts in (from_folders, from_archive):
        assert posts.target_names == GROUPS and len(posts.data) == 9
    assert any(".ipynb_checkpoints" in message for message in caplog.messages)
