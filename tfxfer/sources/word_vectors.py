"""Pretrained word vectors (word2vec, GloVe, fastText) as a Keras `Embedding`.

gensim's `KeyedVectors` reads the files; this module detects the format,
turns gensim's terse parse errors into messages that name the file and line,
and lines the vectors up with a `keras.layers.TextVectorization` vocabulary:
row 0 is padding, row 1 out-of-vocabulary, as `get_vocabulary()` lists them.
"""

import dataclasses
import os
import re

import numpy as np

from tfxfer.data.limits import ENTRY_BYTES, check_expansion, check_regular_file
from tfxfer.log import say
from tfxfer.sources.fasttext_binary import check_fasttext_binary

FORMATS = ("word2vec", "word2vec-binary", "glove", "fasttext", "fasttext-binary", "gensim")
PICKLED_SUFFIXES = (".model", ".kv", ".pkl", ".pickle")
_FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")
PADDING, OOV = "", "[UNK]"


def _case_variants(word):
    return dict.fromkeys((word, word.lower(), word.capitalize(), word.upper()))


@dataclasses.dataclass(frozen=True)
class Coverage:
    """How much of a vocabulary the vectors know.

    `type_share`: the share of vocabulary words (types) found;
    `token_share`: the share of token occurrences in the texts given
    (None without texts); `missing`: the words not found, most frequent
    first when texts were given.
    """

    types_found: int
    types_total: int
    token_share: float | None
    missing: tuple

    @property
    def type_share(self):
        return self.types_found / max(self.types_total, 1)

    def __str__(self):
        tokens = "" if self.token_share is None else f", {self.token_share:.1%} of token occurrences"
        return f"{self.types_found}/{self.types_total} words found ({self.type_share:.1%} of types{tokens})"


@dataclasses.dataclass(frozen=True)
class Adaptation:
    """What `WordVectors.adapt` did: the share of the texts' tokens with a
    vector before and after, and how many words it added."""

    coverage_before: float
    coverage_after: float
    words_added: int

    def __str__(self):
        return f"token coverage {self.coverage_before:.1%} -> {self.coverage_after:.1%}, {self.words_added} words added"


class WordVectors:
    """Word vectors read with gensim, ready to become a Keras `Embedding`.

    Args:
        keyed_vectors: a `gensim.models.KeyedVectors` (e.g. `Word2Vec(...).wv`).

    Example:

    >>> import numpy as np
    >>> from gensim.models import KeyedVectors
    >>> kv = KeyedVectors(2)
    >>> kv.add_vectors(["space", "Orbit"], np.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> vectors = WordVectors(kv)
    >>> layer = vectors.embedding(["space", "orbit", "unknownword"])
    >>> layer.get_weights()[0][2:4].tolist()   # rows 0, 1: padding and [UNK]
    [[1.0, 2.0], [3.0, 4.0]]
    >>> print(vectors.coverage(["space", "orbit", "unknownword"]))
    2/3 words found (66.7% of types)
    """

    def __init__(self, keyed_vectors):
        self.keyed_vectors = keyed_vectors

    @classmethod
    def load(cls, path, format="auto", allow_pickle=False, limit=None):
        """Reads word vectors, detecting the format unless told.

        Args:
            path: a word2vec `.bin` or text file, a GloVe `.txt` (no header
                line), a fastText `.vec` (or `.bin` model, whose subword
                vectors then serve unknown words), or a gensim `.model` /
                `.kv` file; `.gz` and `.bz2` are read compressed.
            format: `"auto"` or one of `FORMATS`.
            allow_pickle: gensim's own `.model`/`.kv` files are pickles, which
                can run code when loaded: set True only for files you trust.
            limit: read only the first `limit` vectors (the most frequent, in
                the usual files).
        """
        return cls(_read(os.fspath(path), format, allow_pickle, limit))

    @property
    def dim(self):
        return self.keyed_vectors.vector_size

    def __len__(self):
        return len(self.keyed_vectors)

    def lookup(self, word):
        """The vector of `word` or of its first case variant known
        (as is, lower, Capitalized, UPPER); for a fastText `.bin` model, an
        unknown word's vector from its character n-grams; else None."""
        keyed = self.keyed_vectors
        for variant in _case_variants(word):
            if keyed.has_index_for(variant):
                return keyed[variant]
        if getattr(keyed, "bucket", 0) and word in keyed:  # a fastText model: from character n-grams
            return keyed[word]
        return None

    def coverage(self, vocabulary, texts=None, standardize=None):
        """A `Coverage` report of `vocabulary` (a list or a TextVectorization).

        With `texts`, token occurrences are counted after the vectorizer's
        own standardization and split (or lower-case whitespace split for a
        plain list), so `token_share` is what the model will actually see.
        """
        words = [w for w in _vocabulary(vocabulary) if w not in (PADDING, OOV)]
        found = {w for w in words if self.lookup(w) is not None}
        missing = [w for w in words if w not in found]
        token_share = None
        if texts is not None:
            counts = _token_counts(vocabulary, texts)
            total = sum(counts.values())
            token_share = sum(c for w, c in counts.items() if w in found) / max(total, 1)
            missing.sort(key=lambda w: -counts.get(w, 0))
        return Coverage(len(found), len(words), token_share, tuple(missing))

    def adapt(self, texts, epochs=5, min_count=5, source_rate=0.1, window=5, seed=0, verbose=True):
        """Continues training the vectors on the target's texts (labelled and
        unlabelled), as ULMFiT's middle stage adapts its source to the
        target domain before any label is used.

        gensim's `Word2Vec` (CBOW, negative sampling) trains on `texts`,
        standardised as `TextVectorization` does (lower case, punctuation
        stripped, split on whitespace). The words the source knows start from
        their source vector and move at `source_rate` times the learning rate
        (0 keeps them fixed); words new to the source that occur at least
        `min_count` times are learned, around the source's words. The
        vectors are replaced in place (as a Keras layer's `adapt` does): the
        source's words, updated, then the new words.

        Returns:
            an `Adaptation`: the token coverage of `texts` before and after,
            and the count of words added.

        Example:

        >>> import numpy as np
        >>> from gensim.models import KeyedVectors
        >>> kv = KeyedVectors(8)
        >>> kv.add_vectors(["rocket", "orbit"], np.eye(8, dtype="float32")[:2])
        >>> vectors = WordVectors(kv)
        >>> report = vectors.adapt(["the rocket reached orbit"] * 50, verbose=False)
        >>> report.words_added, f"{report.coverage_before:.2f} -> {report.coverage_after:.2f}"
        (2, '0.50 -> 1.00')
        """
        from gensim.models import Word2Vec

        if not 0.0 <= source_rate <= 1.0:
            raise ValueError(
                f"source_rate must be in [0, 1] (0: the source's words stay fixed). Received: {source_rate}"
            )
        sentences = [_standardize(text).split() for text in texts]
        before = self._token_share(sentences)
        model = Word2Vec(vector_size=self.dim, window=window, min_count=min_count, seed=seed, workers=1)
        model.build_vocab(sentences)
        if not len(model.wv):
            raise ValueError(f"No word occurs {min_count} times in the texts: pass more texts or a lower min_count.")
        lock = np.ones(len(model.wv), dtype=np.float32)
        from_source = np.zeros(len(model.wv), dtype=bool)  # not read from `lock`: source_rate may be 1.0 too
        for index, word in enumerate(model.wv.index_to_key):
            if (vector := self.lookup(word)) is not None:
                model.wv.vectors[index], lock[index], from_source[index] = vector, source_rate, True
        model.wv.vectors_lockf = lock
        model.train(sentences, total_examples=len(sentences), epochs=epochs)
        known = self.keyed_vectors
        added = [w for w, old in zip(model.wv.index_to_key, from_source) if not old]
        updated = {w: model.wv[w] for w, old in zip(model.wv.index_to_key, from_source) if old}
        words = list(known.index_to_key) + added
        vectors = np.concatenate([known.vectors, model.wv[added] if added else np.zeros((0, self.dim))])
        for variant_of, word in ((self._known_variant(w), w) for w in updated):
            vectors[known.get_index(variant_of)] = updated[word]
        from gensim.models import KeyedVectors

        adapted = KeyedVectors(self.dim)
        adapted.add_vectors(words, vectors.astype(np.float32))
        self.keyed_vectors = adapted
        report = Adaptation(before, self._token_share(sentences), len(added))
        say(verbose, f"WordVectors.adapt: {report}")
        return report

    def _known_variant(self, word):
        """The case variant of `word` that the vectors hold (as `lookup` finds it)."""
        return next(v for v in _case_variants(word) if self.keyed_vectors.has_index_for(v))

    def _token_share(self, sentences):
        total = sum(len(s) for s in sentences)
        known = sum(1 for s in sentences for w in s if self.lookup(w) is not None)
        return known / max(total, 1)

    def embedding_matrix(self, vocabulary, seed=0):
        """`(len(vocabulary) + specials, dim)` float32 rows for `vocabulary`.

        Row 0 (padding) is zeros; the out-of-vocabulary row and the words
        without a vector are drawn from a normal with the per-dimension mean
        and standard deviation of the known vectors, so that they start at
        the vectors' scale.
        """
        words = _vocabulary(vocabulary)
        known = self.keyed_vectors.vectors
        rng = np.random.default_rng(seed)
        matrix = rng.normal(known.mean(0), known.std(0), size=(len(words), self.dim)).astype(np.float32)
        for row, word in enumerate(words):
            if word == PADDING:
                matrix[row] = 0.0
            elif word != OOV and (vector := self.lookup(word)) is not None:
                matrix[row] = vector
        return matrix

    def embedding(self, vocabulary, trainable=False, mask_zero=False, seed=0, name="word_embedding"):
        """A built `keras.layers.Embedding` whose rows line up with `vocabulary`.

        `vocabulary` is a `TextVectorization` layer (its `get_vocabulary()`:
        padding, `[UNK]`, words) or a list of words as passed to
        `TextVectorization(vocabulary=...)` (padding and `[UNK]` are put in
        front unless the list already starts with them).
        """
        import keras

        matrix = self.embedding_matrix(vocabulary, seed=seed)
        layer = keras.layers.Embedding(len(matrix), self.dim, mask_zero=mask_zero, trainable=trainable, name=name)
        layer.build((None, None))
        layer.set_weights([matrix])
        return layer


_PUNCTUATION = re.compile(r"[!\"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~']")


def _standardize(text):
    """`TextVectorization`'s default standardisation: lower case, punctuation stripped."""
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return _PUNCTUATION.sub("", text.lower())


def _vocabulary(vocabulary):
    """The full row order: padding, [UNK], then the words."""
    if hasattr(vocabulary, "get_vocabulary"):
        words = list(vocabulary.get_vocabulary())
        if words[:2] != [PADDING, OOV]:
            raise ValueError(
                f"The TextVectorization vocabulary starts with {words[:2]}; tfxfer expects "
                "the defaults mask_token='' (row 0) and oov_token='[UNK]' (row 1), with "
                "output_mode='int'."
            )
        return words
    words = [str(w) for w in vocabulary]
    return words if words[:2] == [PADDING, OOV] else [PADDING, OOV, *words]


def _token_counts(vocabulary, texts, batch_size=1024):
    """`{word: occurrences}` in `texts`, `[UNK]` for words outside the vocabulary.

    A TextVectorization counts what it outputs (its own standardization,
    split and truncation: what the model sees); a list, lower-case words.
    """
    import collections

    if not hasattr(vocabulary, "get_vocabulary"):
        words = set(_vocabulary(vocabulary))
        return collections.Counter(w if w in words else OOV for text in texts for w in str(text).lower().split())
    words = vocabulary.get_vocabulary()
    totals = np.zeros(len(words), np.int64)
    texts = list(texts)
    for start in range(0, len(texts), batch_size):
        ids = np.asarray(vocabulary(texts[start : start + batch_size])).ravel()
        totals += np.bincount(ids, minlength=len(words))
    return collections.Counter({w: int(c) for w, c in zip(words[1:], totals[1:]) if c})


# === Reading ===


def _sniff(path):
    """The format of `path` from its name and first bytes."""
    from gensim import utils

    name = path.lower().removesuffix(".gz").removesuffix(".bz2")
    if name.endswith(PICKLED_SUFFIXES):
        return "gensim"
    with utils.open(path, "rb") as file:
        head = file.read(4096)
    if head.startswith(_FASTTEXT_MAGIC):
        return "fasttext-binary"
    _refuse_wide_encodings(path, head)
    first_line, _, rest = head.partition(b"\n")
    fields = first_line.split()
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        try:
            rest.decode("utf-8")
        except UnicodeDecodeError as error:
            if error.start < len(rest) - 4:  # not just a character cut at the 4 KB boundary
                return "word2vec-binary"
        if b"\0" in rest:
            return "word2vec-binary"
        return "fasttext" if name.endswith(".vec") else "word2vec"
    return "glove"


_WIDE_ENCODINGS = {  # byte-order marks, longest first
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def _refuse_wide_encodings(path, head):
    """Vector files are UTF-8 text (or binary with a UTF-8 header): a
    UTF-16/32 file (Windows' "Unicode") is named as such, with the fix,
    rather than as lines whose values are not numbers."""
    encoding = next((name for mark, name in _WIDE_ENCODINGS.items() if head.startswith(mark)), None)
    first_line = head.partition(b"\n")[0]
    if encoding is None and first_line.count(b"\0") > len(first_line) // 4:  # UTF-16 without a mark: every other byte 0
        encoding = "UTF-16"
    if encoding:
        raise ValueError(
            f"'{path}' is {encoding} text; word-vector files are UTF-8. Convert it, e.g. "
            f"`iconv -f {encoding} -t UTF-8 '{path}' > vectors.txt`, or save it as UTF-8."
        )


def _read(path, format, allow_pickle, limit):
    from gensim.models import KeyedVectors

    check_regular_file(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No word-vectors file at '{path}'.")
    if os.path.getsize(path) == 0:
        raise ValueError(f"'{path}' is empty: expected word vectors (word2vec, GloVe or fastText).")
    if format not in ("auto", *FORMATS):
        raise ValueError(f"format must be 'auto' or one of {FORMATS}. Received: format={format!r}")
    format = _sniff(path) if format == "auto" else format
    if format == "gensim":
        if not allow_pickle:
            raise ValueError(
                f"'{path}' is a pickled gensim file, which can run code when loaded. "
                "Pass allow_pickle=True if you trust it, or save the vectors with "
                "KeyedVectors.save_word2vec_format() and load that instead."
            )
        loaded = KeyedVectors.load(path)
        return getattr(loaded, "wv", loaded)  # a whole Word2Vec/FastText model
    if format == "fasttext-binary":
        check_fasttext_binary(path)
        loaded = _load_fasttext_binary(path)
        if not np.isfinite(loaded.vectors_ngrams).all():  # they enter the words' vectors and build unknown ones
            bucket = int(np.argmin(np.isfinite(loaded.vectors_ngrams).all(axis=1)))
            raise ValueError(f"'{path}': character n-gram bucket {bucket} holds NaN or infinity; the model is damaged.")
        _refuse_non_finite(path, loaded, first_line=None)
        return loaded
    binary = format == "word2vec-binary"
    if format != "glove":
        _check_declared_size(path, binary, limit)
    try:
        loaded = KeyedVectors.load_word2vec_format(
            path, binary=binary, no_header=format == "glove", limit=limit, unicode_errors="replace"
        )
    except (ValueError, EOFError, IndexError) as error:
        raise ValueError(_diagnose(path, format, error)) from error
    if not loaded.vector_size:
        raise ValueError(
            f"'{path}' holds words without values, not {format} vectors; pass format= if it is another format."
        )
    _refuse_non_finite(path, loaded, first_line=None if binary else (1 if format == "glove" else 2))
    return loaded


def _load_fasttext_binary(path):
    """gensim reads a compressed `.bin`'s matrices with `numpy.fromfile`,
    which reads the compressed bytes as floats: it gets a plain copy."""
    import shutil
    import tempfile

    from gensim import utils
    from gensim.models.fasttext import load_facebook_vectors

    if not path.lower().endswith((".gz", ".bz2")):
        return load_facebook_vectors(path)
    with tempfile.TemporaryDirectory() as folder:
        plain = os.path.join(folder, "vectors.bin")
        with utils.open(path, "rb") as source, open(plain, "wb") as target:
            shutil.copyfileobj(source, target)
        return load_facebook_vectors(plain)


def _check_declared_size(path, binary, limit):
    """The header 'count dimension' against the file's size, before gensim
    allocates count x dimension floats: each vector takes at least a word,
    a space and its values (4 bytes each in binary, 2 in text: "0 ")."""
    from gensim import utils

    with utils.open(path, "rb") as file:
        fields = file.readline(256).split()
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        return  # no header: `_diagnose` names the line
    count, dim = int(fields[0]), int(fields[1])
    count = min(count, limit) if limit else count
    what = f"the header '{fields[0].decode()} {fields[1].decode()}'"
    ENTRY_BYTES.check(4 * count * dim, path, f"{what} ({count:,} vectors of {dim:,} float32)")
    needed, size = count * (4 * dim + 2 if binary else 2 * dim + 2), os.path.getsize(path)
    if path.lower().endswith((".gz", ".bz2")):
        check_expansion(needed, size, path, what)
    elif needed > size:
        raise ValueError(
            f"'{path}': {what} promises {count:,} vectors of {dim:,} values, at least {needed:,} bytes, but the "
            f"file has {size:,}: truncated (download it again), or a wrong header; limit= reads fewer."
        )


def _refuse_non_finite(path, keyed_vectors, first_line):
    """One NaN would spread to every unknown word's vector (their mean):
    the first non-finite vector is named, with its line in a text file."""
    finite = np.isfinite(keyed_vectors.vectors).all(axis=1)
    if finite.all():
        return
    row = int(np.argmin(finite))
    where = f"line {row + first_line}" if first_line else f"vector {row + 1}"
    raise ValueError(
        f"'{path}', {where}: the vector of {keyed_vectors.index_to_key[row]!r} holds NaN or infinity "
        f"({int((~finite).sum())} such vector(s) in all); "
        + ("fix or remove those lines." if first_line else "the file is damaged: download it again.")
    )


def _diagnose(path, format, error):
    """A message naming what is wrong in a file gensim could not parse."""
    from gensim import utils

    if format == "word2vec-binary":
        return (
            f"'{path}' is not a complete word2vec binary file ({error}): its header "
            "promises more vectors than the file holds (truncated download?) or "
            "the header line 'count dimension' is wrong."
        )
    with utils.open(path, "rb") as file:
        lines = iter(enumerate(file, start=1))
        if format != "glove":
            number, header = next(lines)
            fields = header.split()
            if len(fields) != 2 or not all(f.isdigit() for f in fields):
                return f"'{path}', line 1: expected the header 'count dimension', got {header[:60]!r}."
            dim = int(fields[1])
        else:
            dim = None
        for number, line in lines:
            parts = line.rstrip().split(b" ")
            dim = dim if dim is not None else len(parts) - 1
            if len(parts) != dim + 1:
                return (
                    f"'{path}', line {number}: {len(parts) - 1} values after the word "
                    f"{parts[0][:40]!r}, expected {dim} (the dimension of the "
                    f"{'header' if format != 'glove' else 'first line'})."
                )
            try:
                np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                return f"'{path}', line {number}: the values after {parts[0][:40]!r} are not all numbers."
    return (
        f"'{path}' could not be read as {format} ({error}): fewer lines than its "
        "header says (truncated?), or pass format= explicitly."
    )
