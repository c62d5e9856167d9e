"""The embedded word vectors, shipped in `models/` so the text demo needs no network.

word2vec (gensim, skip-gram) trained on the English text that gensim's own
test data ships: the first Wikipedia articles
(`enwiki-latest-pages-articles1...-shortened.bz2`, tokenized by gensim's
`WikiCorpus`) and the Lee news corpus (`lee_background.cor`). Stored in the
word2vec binary format (no pickle) beside a manifest with each file's
sha256, the sources and the command that rebuilt them:

    python -m tfxfer.sources.embedded_vectors models/wiki_news_w2v
"""

import argparse
import os
import pathlib
import sys

from tfxfer.sources.embedded import embedded_source_path, write_manifest

EMBEDDED_VECTORS = "wiki_news_w2v"
VECTORS_FILE = "vectors.bin"
WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
NEWS = "lee_background.cor"


def embedded_vectors_path(verify=True):
    """The shipped vectors file, checked against its manifest."""
    folder = embedded_source_path(verify, EMBEDDED_VECTORS, "tfxfer.sources.embedded_vectors")
    return os.path.join(folder, VECTORS_FILE)


def _gensim_test_file(name):
    import gensim

    return os.path.join(os.path.dirname(gensim.__file__), "test", "test_data", name)


def training_sentences():
    """Token lists: each Wikipedia article, then each line of the Lee corpus."""
    from gensim.corpora.wikicorpus import WikiCorpus
    from gensim.utils import simple_preprocess

    wiki = WikiCorpus(_gensim_test_file(WIKI_DUMP), dictionary={}, processes=1)
    sentences = list(wiki.get_texts())
    with open(_gensim_test_file(NEWS), encoding="utf-8") as file:
        sentences += [simple_preprocess(line) for line in file if line.strip()]
    return sentences


def build_embedded_vectors(folder, dim=100, epochs=10, min_count=3, seed=0, max_words=11000):
    """Trains the vectors, writes `folder/vectors.bin` and the manifest.

    `max_words` keeps the most frequent words only, so the file stays under
    5 MB in the repository."""
    from gensim.models import Word2Vec

    sentences = training_sentences()
    # One worker: the same seed gives the same vectors.
    model = Word2Vec(
        sentences,
        vector_size=dim,
        window=5,
        min_count=min_count,
        max_final_vocab=max_words,
        sg=1,
        epochs=epochs,
        seed=seed,
        workers=1,
    )
    pathlib.Path(folder).mkdir(parents=True, exist_ok=False)
    model.wv.save_word2vec_format(os.path.join(folder, VECTORS_FILE), binary=True)
    tokens = sum(len(s) for s in sentences)
    return write_manifest(
        folder,
        name=EMBEDDED_VECTORS,
        what=f"word2vec skip-gram vectors, {len(model.wv)} words x {dim} dims, word2vec binary format",
        data=f"gensim test data: {WIKI_DUMP} (WikiCorpus tokens) and {NEWS}: "
        f"{len(sentences)} documents, {tokens} tokens",
        seed=seed,
        epochs=epochs,
        min_count=min_count,
        max_words=max_words,
        command=f"python -m tfxfer.sources.embedded_vectors {folder} --dim {dim} --epochs {epochs} "
        f"--min-count {min_count} --seed {seed} --max-words {max_words}",
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="where to write the vectors (must not exist)")
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--min-count", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-words", type=int, default=11000)
    args = parser.parse_args(argv)
    manifest = build_embedded_vectors(args.folder, args.dim, args.epochs, args.min_count, args.seed, args.max_words)
    print(f"wrote {args.folder}: {manifest['what']}; {manifest['data']}")


if __name__ == "__main__":
    sys.exit(main())
