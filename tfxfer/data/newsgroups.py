"""20 Newsgroups, "bydate" split, from the files users have.

Accepted: scikit-learn's cache (`fetch_20newsgroups`, its pickle read with a
restricted unpickler; downloaded by scikit-learn when missing), the archive
`20news-bydate.tar.gz` (or one split's `20news-bydate-train.tar.gz`, read in
place: nothing is extracted, so no member can write outside a folder), and
the extracted `20news-bydate-train/` and `-test/` folders. Posts are decoded
as latin-1, classes are the sorted newsgroup names, and documents come in
(newsgroup, file name) order from every source. Headers, footers and quotes
are removed with scikit-learn's own functions, as `fetch_20newsgroups(remove=)`
does.
"""

import codecs
import os
import pickle
import posixpath
import tarfile

import numpy as np

from tfxfer._compat import newsgroup_strippers
from tfxfer.data.archives import checked_members, is_tar_archive, reading_archive
from tfxfer.data.hidden import visible
from tfxfer.data.limits import check_regular_file
from tfxfer.data.safe_pickle import NUMPY_ARRAYS, SKLEARN_BUNCH, restricted_loads
from tfxfer.validation import check_choice

SPLITS = {"train": "20news-bydate-train", "test": "20news-bydate-test"}
SUBSETS = ("train", "test", "all")
REMOVABLE = ("headers", "footers", "quotes")
SKLEARN_CACHE = "20news-bydate_py3.pkz"


def load_20newsgroups(path=None, subset="train", remove=(), data_home=None, require_all=True):
    """The posts of `subset` (`"train"`, `"test"` or `"all"`).

    Args:
        path: an archive, a folder holding the split folders, or one split
            folder; None reads scikit-learn's cache (in `data_home`).
        remove: any of `"headers"`, `"footers"`, `"quotes"`.
        require_all: with `subset="all"`, whether a missing test split is
            an error (False: the training split alone is returned).

    Returns:
        A `sklearn.utils.Bunch` with `data` (list of str), `target` (int
        array), `target_names` and `filenames`, like `fetch_20newsgroups`.
    """
    from sklearn.utils import Bunch

    check_choice("subset", subset, SUBSETS)
    remove = (remove,) if isinstance(remove, str) else tuple(remove)
    if unknown := set(remove) - set(REMOVABLE):
        raise ValueError(f"remove takes {REMOVABLE}. Received unknown: {sorted(unknown)}")
    splits = ("train", "test") if subset == "all" else (subset,)
    required = splits if require_all else ("train",)
    posts = _read(path, splits, data_home, required)  # {(split, group, name): text}
    names = sorted({group for _, group, _ in posts})
    keys = sorted(posts, key=lambda k: (splits.index(k[0]), k[1], k[2]))
    data = strip_posts([posts[k] for k in keys], remove)
    return Bunch(
        data=data,
        target=np.array([names.index(group) for _, group, _ in keys]),
        target_names=names,
        filenames=np.array([f"{SPLITS[split]}/{group}/{name}" for split, group, name in keys]),
    )


def strip_posts(texts, remove):
    """`texts` without the parts named in `remove`, by scikit-learn's rules."""
    for kind, strip in newsgroup_strippers():  # scikit-learn's order: headers, footers, quotes
        if kind in remove:
            texts = [strip(text) for text in texts]
    return texts


def _read(path, splits, data_home, required):
    if path is None:
        return _from_sklearn_cache(splits, data_home)
    path = os.path.expanduser(os.fspath(path))
    if os.path.isdir(path):
        return _from_folders(path, splits, required)
    check_regular_file(path)
    if os.path.isfile(path):
        if not is_tar_archive(path):
            raise ValueError(f"'{path}' is not a tar archive: expected 20news-bydate.tar.gz, or its folders.")
        return _from_archive(path, splits, required)
    raise FileNotFoundError(
        f"No 20 Newsgroups data at '{path}'. Pass 20news-bydate.tar.gz, a folder with "
        f"{SPLITS['train']}/ and {SPLITS['test']}/, or one of those folders."
    )


def _missing(origin, split):
    return ValueError(
        f"'{origin}' has no {SPLITS[split]}/<newsgroup>/<post> files. Pass the "
        f"{split} split (20news-bydate.tar.gz holds both), or choose another subset=."
    )


def _from_folders(root, splits, required):
    posts = {}
    for split in splits:
        folder = os.path.join(root, SPLITS[split])
        if not os.path.isdir(folder) and os.path.basename(os.path.normpath(root)) == SPLITS[split]:
            folder = root  # the split folder itself
        if not os.path.isdir(folder):
            if split in required:
                raise _missing(root, split)
            continue
        for group in visible(os.listdir(folder), folder):
            if os.path.isdir(os.path.join(folder, group)):
                for name in visible(os.listdir(os.path.join(folder, group)), os.path.join(folder, group)):
                    post = os.path.join(folder, group, name)
                    check_regular_file(post)
                    if os.path.isfile(post):
                        with open(post, encoding="latin-1") as file:
                            posts[split, group, name] = file.read()
        if split in required and not any(key[0] == split for key in posts):
            raise _missing(root, split)
    return posts


def _member_parts(member, origin):
    """`(split folder, group, name)` of a post's archive member, refusing any
    name that would leave the archive's folder if it were extracted."""
    name = member.name
    parts = posixpath.normpath(name).split("/")
    if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        raise ValueError(
            f"'{origin}' holds a member '{name}' that points outside the archive's folder; "
            "refusing the archive. Re-download 20news-bydate.tar.gz from a trusted source."
        )
    if not member.isfile() or len(parts) < 3 or any(part.startswith(".") for part in parts[-3:]):
        return None  # hidden folders and files (.ipynb_checkpoints, .DS_Store) are no newsgroup or post
    return parts[-3], parts[-2], parts[-1]


def _from_archive(path, splits, required):
    wanted = {SPLITS[s]: s for s in splits}
    posts = {}
    with reading_archive(path), tarfile.open(path, "r:*") as archive:
        for member in checked_members(archive, path):
            parts = _member_parts(member, path)
            if parts and parts[0] in wanted:
                text = archive.extractfile(member).read().decode("latin-1")
                posts[wanted[parts[0]], parts[1], parts[2]] = text
    for split in required:
        if not any(key[0] == split for key in posts):
            raise _missing(path, split)
    return posts


def _load_bunch_pickle(path, what, fix, encoding="ASCII"):
    """A zlib-compressed pickle of scikit-learn Bunch objects, through the
    restricted unpickler; anything else is refused with `what` and `fix`."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        return restricted_loads(
            codecs.decode(data, "zlib_codec"),
            {**NUMPY_ARRAYS, **SKLEARN_BUNCH},
            f"{what} holds only Bunch objects, lists and arrays",
            encoding,
        )
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, OSError) as error:
        raise ValueError(f"'{path}' is not {what} ({error}){fix}") from error


def _from_sklearn_cache(splits, data_home):
    from sklearn.datasets import fetch_20newsgroups, get_data_home

    cache_path = os.path.join(get_data_home(data_home), SKLEARN_CACHE)
    if not os.path.exists(cache_path):
        fetch_20newsgroups(data_home=data_home, download_if_missing=True)  # downloads, writes the cache
    cache = _load_bunch_pickle(
        cache_path, "a scikit-learn 20 Newsgroups cache", "; delete it and call again to download it anew"
    )
    posts = {}
    for split in splits:
        bunch = cache[split]
        for text, target, filename in zip(bunch["data"], bunch["target"], bunch["filenames"]):
            posts[split, bunch["target_names"][target], os.path.basename(str(filename))] = text
    return posts


def gensim_mini_newsgroup_path():
    """The 200-post, two-group sample of 20 Newsgroups that gensim ships."""
    import gensim

    return os.path.join(os.path.dirname(gensim.__file__), "test", "test_data", "mini_newsgroup")


def load_mini_newsgroup(path=None):
    """gensim's `mini_newsgroup` sample (alt.atheism vs. sci.space), read with
    the restricted unpickler: a zlib-compressed Python 2 pickle of a Bunch.

    Returns:
        A `Bunch` with `data`, `target`, `target_names`, as `load_20newsgroups`.
    """
    from sklearn.utils import Bunch

    path = os.fspath(path or gensim_mini_newsgroup_path())
    bunch = _load_bunch_pickle(path, "gensim's mini_newsgroup sample", ".", encoding="latin-1")  # a Python 2 pickle
    return Bunch(data=list(bunch["data"]), target=np.asarray(bunch["target"]), target_names=list(bunch["target_names"]))
