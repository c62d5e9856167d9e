"""WordVectors: each format read, malformed files named, rows aligned word by word."""

import gzip
import re

import keras
import numpy as np
import pytest
from gensim.models import KeyedVectors

from tfxfer import WordVectors

WORDS = ["the", "Paris", "space", "orbit", "NASA", "god"]


@pytest.fixture(scope="module")
def keyed():
    kv = KeyedVectors(4)
    kv.add_vectors(WORDS, np.random.default_rng(0).normal(size=(len(WORDS), 4)).astype(np.float32))
    return kv


def _glove(path, kv):
    lines = [f"{w} " + " ".join(f"{x:.6f}" for x in kv[w]) for w in kv.index_to_key]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("name, binary", [("vectors.bin", True), ("vectors.txt", False), ("vectors.vec", False)])
def test_word2vec_and_fasttext_files_are_detected(tmp_path, keyed, name, binary):
    keyed.save_word2vec_format(str(tmp_path / name), binary=binary)
    loaded = WordVectors.load(tmp_path / name)
    assert loaded.keyed_vectors.index_to_key == WORDS
    np.testing.assert_allclose(loaded.keyed_vectors.vectors, keyed.vectors, atol=1e-6)


def test_glove_without_header_and_compressed(tmp_path, keyed):
    glove = _glove(tmp_path / "glove.txt", keyed)
    np.testing.assert_allclose(WordVectors.load(glove).keyed_vectors.vectors, keyed.vectors, atol=1e-6)
    with gzip.open(tmp_path / "glove.txt.gz", "wb") as file:
        file.write(glove.read_bytes())
    assert WordVectors.load(tmp_path / "glove.txt.gz").keyed_vectors.index_to_key == WORDS
    assert len(WordVectors.load(glove, limit=3)) == 3


def test_pickled_gensim_files_need_allow_pickle(tmp_path, keyed):
    keyed.save(str(tmp_path / "vectors.kv"))
    with pytest.raises(ValueError, match="pickled gensim file.*allow_pickle=True"):
        WordVectors.load(tmp_path / "vectors.kv")
    loaded = WordVectors.load(tmp_path / "vectors.kv", allow_pickle=True)
    np.testing.assert_array_equal(loaded.keyed_vectors.vectors, keyed.vectors)


def test_malformed_files_name_the_file_and_line(tmp_path, keyed):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="empty.txt' is empty"):
        WordVectors.load(tmp_path / "empty.txt")

    lines = _glove(tmp_path / "g.txt", keyed).read_text().splitlines()
    lines[2] = lines[2].rsplit(" ", 1)[0]  # one value short
    (tmp_path / "short.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"short.txt', line 3: 3 values after the word b'space', expected 4"):
        WordVectors.load(tmp_path / "short.txt")

    keyed.save_word2vec_format(str(tmp_path / "w.txt"), binary=False)
    lines = (tmp_path / "w.txt").read_text().splitlines()
    lines[4] = lines[4] + " 0.5"  # header line + 3 vectors, then one too long
    (tmp_path / "long.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"long.txt', line 5: 5 values after the word b'orbit', expected 4"):
        WordVectors.load(tmp_path / "long.txt")

    keyed.save_word2vec_format(str(tmp_path / "w.bin"), binary=True)
    data = (tmp_path / "w.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[: len(data) - 10])
    with pytest.raises(ValueError, match="cut.bin' is not a complete word2vec binary file.*truncated"):
        WordVectors.load(tmp_path / "cut.bin")


def test_embedding_rows_line_up_with_text_vectorization(keyed):
    vectorizer = keras.layers.TextVectorization(max_tokens=20)
    vectorizer.adapt(["the space orbit orbit", "paris nasa the the", "zebra"])
    vocabulary = vectorizer.get_vocabulary()
    layer = WordVectors(keyed).embedding(vectorizer)
    matrix = layer.get_weights()[0]
    assert matrix.shape == (len(vocabulary), 4) and not layer.trainable
    np.testing.assert_array_equal(matrix[0], 0.0)  # padding
    for row, word in enumerate(vocabulary):
        variant = next((v for v in (word, word.capitalize(), word.upper()) if v in keyed.key_to_index), None)
        if variant is not None:  # found through its case variant
            np.testing.assert_array_equal(matrix[row], keyed[variant])
    assert {"paris", "nasa", "the", "space", "orbit"} <= set(vocabulary)
    # The ids the vectorizer gives select the rows of those words.
    ids = np.asarray(vectorizer(["space Paris"]))[0]
    np.testing.assert_array_equal(np.asarray(layer(ids)), np.stack([keyed["space"], keyed["Paris"]]))


def test_misses_start_at_the_vectors_scale_and_mask_zero():
    rng = np.random.default_rng(0)
    kv = KeyedVectors(8)
    kv.add_vectors([f"w{i}" for i in range(500)], rng.normal(3.0, 2.0, size=(500, 8)).astype(np.float32))
    vocabulary = [f"unknown{i}" for i in range(400)]
    layer = WordVectors(kv).embedding(vocabulary, mask_zero=True, trainable=True)
    misses = layer.get_weights()[0][2:]
    assert abs(misses.mean() - 3.0) < 0.2 and abs(misses.std() - 2.0) < 0.2
    assert layer.mask_zero and layer.trainable
    np.testing.assert_array_equal(np.asarray(layer.compute_mask(np.array([[3, 0]]))), [[True, False]])


def test_coverage_of_types_and_token_occurrences(keyed):
    vectors = WordVectors(keyed)
    vocabulary = ["the", "space", "zebra", "paris"]  # 3 of 4 known
    texts = ["the the the zebra", "space unseen"]  # 6 tokens: the x3 + space known
    report = vectors.coverage(vocabulary, texts)
    assert (report.types_found, report.types_total) == (3, 4)
    assert report.token_share == pytest.approx(4 / 6)
    assert report.missing == ("zebra",)
    vectorizer = keras.layers.TextVectorization(vocabulary=vocabulary)
    assert vectors.coverage(vectorizer, texts).token_share == pytest.approx(4 / 6)
    assert str(report) == "3/4 words found (75.0% of types, 66.7% of token occurrences)"


def test_fasttext_binary_model_serves_unknown_words_from_subwords(tmp_path):
    from gensim.models import FastText
    from gensim.models.fasttext import save_facebook_model

    sentences = [["rocket", "orbit", "launch"], ["rockets", "orbiting", "launches"]] * 20
    model = FastText(sentences, vector_size=4, min_count=1, epochs=2, seed=0, workers=1)
    save_facebook_model(model, str(tmp_path / "model.bin"))
    loaded = WordVectors.load(tmp_path / "model.bin")  # detected by its magic number, not its suffix
    np.testing.assert_allclose(loaded.lookup("rocket"), model.wv["rocket"], atol=1e-6)
    assert loaded.lookup("rocketry") is not None  # out of vocabulary, built from character n-grams


def test_adapt_keeps_source_words_close_and_learns_new_ones():
    """A source trained on gensim's bundled Lee corpus; the target texts are
    the same corpus with "government" renamed "zorblax", a word the source
    never saw. Adapting learns it near where "government" was, and moves
    the source's own words only a little (source_rate=0.1)."""
    from gensim.models import Word2Vec
    from gensim.test.utils import datapath

    from tfxfer.sources.word_vectors import _standardize

    with open(datapath("lee_background.cor")) as corpus:
        lines = corpus.read().splitlines()
    source = Word2Vec(
        [_standardize(line).split() for line in lines], vector_size=32, min_count=3, epochs=20, seed=0, workers=1
    ).wv
    vectors = WordVectors(source)  # adapt replaces its vectors, leaving `source` as it was
    kept = {w: source[w].copy() for w in ("police", "minister", "fire", "government")}
    target = [re.sub("(?i)government", "zorblax", line) for line in lines]

    report = vectors.adapt(target, epochs=5, verbose=False)

    assert report.words_added >= 1 and vectors.lookup("zorblax") is not None
    assert report.coverage_after > report.coverage_before
    assert len(vectors) == len(source) + report.words_added  # no source word lost

    def cosine(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    for word in ("police", "minister", "fire"):
        assert cosine(kept[word], vectors.lookup(word)) > 0.99
    new = vectors.lookup("zorblax")
    neighbours = [w for w, _ in vectors.keyed_vectors.most_similar("zorblax", topn=5)]
    assert "government" in neighbours and cosine(new, kept["government"]) > 0.8
    with pytest.raises(ValueError, match="source_rate"):
        vectors.adapt(target, source_rate=2.0)


def test_a_nan_vector_is_named_with_its_word_and_line(tmp_path):
    """gensim reads "nan" as a number; one NaN row would turn every unknown
    word's vector (their mean) into NaN and the loss with it."""
    glove = tmp_path / "nan.txt"
    glove.write_text("rocket 0.1 0.2 0.3\norbit 0.2 nan 0.1\nfaith 0.3 inf 0.0\n")
    with pytest.raises(ValueError, match=r"nan.txt', line 2: the vector of 'orbit' holds NaN.*2 such"):
        WordVectors.load(glove, format="glove")
    word2vec = tmp_path / "nan.vec"
    word2vec.write_text("2 3\nrocket 0.1 0.2 0.3\norbit 0.2 nan 0.1\n")
    with pytest.raises(ValueError, match=r"nan.vec', line 3: the vector of 'orbit'"):
        WordVectors.load(word2vec)


def test_a_header_promising_more_than_the_file_is_refused_before_allocation(tmp_path, keyed):
    keyed.save_word2vec_format(str(tmp_path / "w.txt"), binary=False)
    lines = (tmp_path / "w.txt").read_text().splitlines()
    (tmp_path / "liar.txt").write_text("\n".join(["2000000 4", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"liar.txt': the header '2000000 4' promises 2,000,000 vectors.*truncated"):
        WordVectors.load(tmp_path / "liar.txt")
    assert len(WordVectors.load(tmp_path / "liar.txt", limit=2)) == 2  # the first vectors are whole
    (tmp_path / "huge.bin").write_bytes(b"1000000000 1000\n" + b"x" * 100)
    with pytest.raises(ValueError, match=r"huge.bin': the header .* declares 4,000,000,000,000 bytes.*TFXFER_MAX"):
        WordVectors.load(tmp_path / "huge.bin")
    with gzip.open(tmp_path / "liar.txt.gz", "wb") as file:
        file.write(b"500000 300\n" + b"0 " * 1000)
    with pytest.raises(ValueError, match=r"liar.txt.gz': the header '500000 300' declares .*TFXFER_MAX_EXPANSION"):
        WordVectors.load(tmp_path / "liar.txt.gz")


def _fasttext_file(path):
    from gensim.models import FastText
    from gensim.models.fasttext import save_facebook_model

    sentences = [["rocket", "orbit", "launch"], ["rockets", "orbiting", "launches"]] * 20
    model = FastText(sentences, vector_size=4, min_count=1, bucket=32, epochs=1, seed=0, workers=1)
    save_facebook_model(model, str(path))
    return path


def test_a_truncated_or_padded_fasttext_bin_is_refused_and_a_compressed_one_read(tmp_path):
    data = _fasttext_file(tmp_path / "model.bin").read_bytes()
    cases = {
        120: "ends at byte 120 inside word",
        len(data) // 2: "inside the input matrix",
        len(data) - 1: "inside the output matrix",
    }
    for cut, where in cases.items():
        (tmp_path / "cut.bin").write_bytes(data[:cut])
        with pytest.raises(ValueError, match=f"cut.bin' is a truncated fastText .bin file: it {where}|{where}"):
            WordVectors.load(tmp_path / "cut.bin")
    (tmp_path / "padded.bin").write_bytes(data + b"\0")
    with pytest.raises(ValueError, match="padded.bin' is not a valid fastText .bin model: bytes follow"):
        WordVectors.load(tmp_path / "padded.bin")
    # gensim alone reads a compressed .bin's matrices as the compressed bytes: tfxfer reads it plain.
    (tmp_path / "model.bin.gz").write_bytes(gzip.compress(data))
    plain, compressed = WordVectors.load(tmp_path / "model.bin"), WordVectors.load(tmp_path / "model.bin.gz")
    np.testing.assert_array_equal(plain.lookup("rocketry"), compressed.lookup("rocketry"))
    np.testing.assert_array_equal(plain.keyed_vectors.vectors, compressed.keyed_vectors.vectors)


def test_a_supervised_or_nan_fasttext_bin_and_words_without_values_are_named(tmp_path):
    import struct

    data = bytearray(_fasttext_file(tmp_path / "model.bin").read_bytes())
    counts = 8 + struct.calcsize("@12id")  # magic, version, the arguments; then entries, words, labels
    supervised = data[: counts + 8] + struct.pack("@i", 3) + data[counts + 12 :]
    (tmp_path / "classifier.bin").write_bytes(supervised)
    with pytest.raises(ValueError, match=r"classifier.bin' is not a valid fastText .bin model: .*supervised.*3 labels"):
        WordVectors.load(tmp_path / "classifier.bin")
    # The input matrix (6 words, then 32 n-gram buckets, of 4 values) ends where the output
    # matrix's flag and shape (17 bytes) and its 6 rows begin.
    input_end = len(data) - (17 + 4 * 6 * 4)
    assert struct.unpack("@2q", data[input_end + 1 : input_end + 17]) == (6, 4)
    for row, message in (
        (0, r", vector 1: the vector of '\w+' holds NaN.*damaged"),
        (6 + 31, ": character n-gram bucket 31 holds NaN"),
    ):
        damaged = bytearray(data)
        start = input_end - 4 * 4 * (38 - row)
        damaged[start : start + 4] = struct.pack("@f", float("nan"))
        (tmp_path / "nan.bin").write_bytes(damaged)
        with pytest.raises(ValueError, match=f"nan.bin'{message}"):
            WordVectors.load(tmp_path / "nan.bin")
    (tmp_path / "words.txt").write_text("orbit\nrocket\n")
    with pytest.raises(ValueError, match="words.txt' holds words without values, not glove vectors"):
        WordVectors.load(tmp_path / "words.txt")


def test_adapt_at_source_rate_one_counts_only_new_words_as_added():
    """At source_rate=1.0 the source's words train at the full rate, like the
    new ones: they must still count as updated, not added (once, a lock of
    1.0 made every known word 'added', listed twice, its old vector kept)."""
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(0)
    kv = KeyedVectors(8)
    kv.add_vectors(["rocket", "orbit"], rng.normal(size=(2, 8)).astype("float32"))
    vectors = WordVectors(kv)
    before = {w: kv[w].copy() for w in ("rocket", "orbit")}

    report = vectors.adapt(["the rocket reached orbit"] * 50, min_count=5, source_rate=1.0, verbose=False)

    assert report.words_added == 2  # "the" and "reached", not the source's words
    assert len(vectors) == 4 and sorted(vectors.keyed_vectors.index_to_key) == ["orbit", "reached", "rocket", "the"]
    for word, old in before.items():  # trained at the full rate: moved from the source's vector
        assert not np.allclose(vectors.lookup(word), old)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_utf16_or_utf32_vector_file_is_named_by_its_encoding(tmp_path, keyed, encoding):
    text = _glove(tmp_path / "g.txt", keyed).read_text()
    (tmp_path / "wide.txt").write_bytes(text.encode(encoding))  # utf-16-le: no byte-order mark
    expected = "UTF-32" if encoding == "utf-32" else "UTF-16"
    with pytest.raises(ValueError, match=f"wide.txt' is {expected} text; word-vector files are UTF-8. Convert it"):
        WordVectors.load(tmp_path / "wide.txt")
    assert WordVectors.load(tmp_path / "g.txt").dim == 4  # the same vectors in UTF-8 read
