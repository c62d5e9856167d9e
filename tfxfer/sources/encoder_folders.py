"""Local Hugging Face and sentence-transformers folders of BERT-family
encoders, read as KerasHub presets.

KerasHub converts such a folder itself (`Backbone.from_preset(folder)`, its
weights from `model.safetensors`) once the tokenizer's own files are there.
This module says whether a folder is one, what the sentence-transformers
files in it declare (pooling, normalisation, sequence length), and writes
the tokenizer files a folder lacks (derived from its `tokenizer.json`) into
tfxfer's cache, beside links to the folder's own files, never into it.
"""

import hashlib
import json
import os

from tfxfer.settings import cache_folder, encoder_cache_folders

# Hugging Face `model_type`s whose KerasHub converter builds a text encoder.
ENCODER_TYPES = ("albert", "bert", "distilbert", "roberta", "xlm-roberta")
# The files each encoder's tokenizer reads, by model type.
TOKENIZER_FILES = {
    "bert": ("vocab.txt",),
    "distilbert": ("vocab.txt",),
    "roberta": ("vocab.json", "merges.txt"),
    "albert": ("spiece.model",),
    "xlm-roberta": ("sentencepiece.bpe.model",),
}
POOLINGS = ("mean", "cls", "max")


def is_encoder_folder(path):
    """A local folder in the Hugging Face layout: `config.json` naming a
    `model_type`, beside `model.safetensors`."""
    config = os.path.join(path, "config.json")
    if not (os.path.isdir(path) and os.path.isfile(config)):
        return False
    try:
        with open(config, encoding="utf-8") as file:
            declared = json.load(file)
    except (OSError, ValueError) as error:
        if os.path.isfile(os.path.join(path, "model.safetensors")):  # a Hugging Face folder whose config broke
            raise ValueError(
                f"'{config}' is not valid JSON ({error}): a Hugging Face folder's config.json names its "
                "model_type and sizes; restore it from the model's source."
            ) from None
        return False
    return isinstance(declared, dict) and "model_type" in declared


def model_type(folder):
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as file:
        return json.load(file)["model_type"]


def _json(folder, name):
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as file:
        try:
            return json.load(file)
        except ValueError as error:
            raise ValueError(f"'{path}' is not valid JSON ({error}): restore it from the model's source.") from None


def declared_pooling(folder):
    """`(pooling, normalize)` a sentence-transformers folder declares
    (`1_Pooling/config.json`, a `Normalize` module in `modules.json`), or
    `(None, False)` for a plain Hugging Face folder."""
    config = _json(folder, os.path.join("1_Pooling", "config.json"))
    pooling = None
    if config is not None:
        if config.get("pooling_mode_cls_token"):
            pooling = "cls"
        elif config.get("pooling_mode_max_tokens"):
            pooling = "max"
        else:
            pooling = "mean"
    modules = _json(folder, "modules.json") or []
    normalize = any("Normalize" in module.get("type", "") for module in modules)
    return pooling, normalize


def declared_sequence_length(folder):
    """The `max_seq_length` of `sentence_bert_config.json`, or None."""
    config = _json(folder, "sentence_bert_config.json") or {}
    length = config.get("max_seq_length")
    return int(length) if length else None


def preset_folder(folder):
    """A folder KerasHub can convert: `folder` itself when its tokenizer
    files are there, else a cache folder of links to its files plus the
    tokenizer files derived from its `tokenizer.json`."""
    folder = os.path.abspath(os.path.expanduser(folder))
    kind = model_type(folder)
    if kind not in ENCODER_TYPES:
        raise ValueError(
            f"'{folder}' holds a {kind!r} model; tfxfer reads text encoders of the types "
            f"{', '.join(ENCODER_TYPES)} from a Hugging Face folder (KerasHub converts them). "
            "Pass one of those, or a KerasHub preset."
        )
    if not os.path.isfile(os.path.join(folder, "model.safetensors")):
        raise FileNotFoundError(
            f"'{folder}' has no model.safetensors: KerasHub converts the weights from that file "
            "(save them with save_pretrained(..., safe_serialization=True))."
        )
    needed = TOKENIZER_FILES[kind]
    if all(os.path.isfile(os.path.join(folder, name)) for name in needed):
        return folder
    derived = _derived_tokenizer_files(folder, kind, needed)
    with open(os.path.join(folder, "tokenizer.json"), "rb") as file:
        digest = hashlib.sha256(file.read() + folder.encode()).hexdigest()[:16]
    target = os.path.join(cache_folder("encoders"), f"{os.path.basename(folder)}-{digest}")
    os.makedirs(target, exist_ok=True)
    for name in os.listdir(folder):
        link = os.path.join(target, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(folder, name), link)
    for name, text in derived.items():
        partial = os.path.join(target, f".{name}.{os.getpid()}")
        with open(partial, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(partial, os.path.join(target, name))
    return target


def _derived_tokenizer_files(folder, kind, needed):
    """`{file name: text}` of the tokenizer files of `kind`, from `tokenizer.json`."""
    missing = ", ".join(needed)
    tokenizer = _json(folder, "tokenizer.json")
    if tokenizer is None:
        raise FileNotFoundError(
            f"'{folder}' has neither {missing} nor tokenizer.json: copy the model's tokenizer files into it."
        )
    model = tokenizer.get("model", {})
    vocabulary = model.get("vocab")
    if kind in ("bert", "distilbert") and model.get("type") == "WordPiece" and isinstance(vocabulary, dict):
        return {"vocab.txt": "".join(f"{token}\n" for token, _ in sorted(vocabulary.items(), key=lambda t: t[1]))}
    if kind == "roberta" and model.get("type") == "BPE" and isinstance(vocabulary, dict):
        merges = [" ".join(m) if isinstance(m, list) else m for m in model.get("merges", [])]
        merges_text = "#version: 0.2\n" + "".join(f"{merge}\n" for merge in merges)
        return {"vocab.json": json.dumps(vocabulary), "merges.txt": merges_text}
    raise FileNotFoundError(
        f"'{folder}' lacks {missing}, and its tokenizer.json ({model.get('type', 'no model')}) cannot give them "
        f"for a {kind!r} model: copy {missing} from the model's source."
    )


def cached_encoders():
    """`(name, folder)` of the encoder folders in the Hugging Face hub cache
    (`models--org--name/snapshots/<revision>`) and the sentence-transformers
    cache (`<name>/`) that tfxfer can read as sources (`ENCODER_TYPES`)."""
    hub, sentence = encoder_cache_folders()
    candidates = []
    if os.path.isdir(hub):
        for entry in sorted(os.listdir(hub)):
            snapshots = os.path.join(hub, entry, "snapshots")
            if entry.startswith("models--") and os.path.isdir(snapshots):
                name = entry.removeprefix("models--").replace("--", "/")
                candidates += [(name, os.path.join(snapshots, rev)) for rev in sorted(os.listdir(snapshots))]
    if os.path.isdir(sentence):
        candidates += [(entry, os.path.join(sentence, entry)) for entry in sorted(os.listdir(sentence))]
    found = []
    for name, folder in candidates:
        try:
            usable = is_encoder_folder(folder) and model_type(folder) in ENCODER_TYPES
        except (OSError, ValueError):  # a broken download: not offered
            usable = False
        if usable and os.path.isfile(os.path.join(folder, "model.safetensors")):
            found.append((name, folder))
    return found


def describe(folder):
    """`"bert encoder, mean pooling, normalised, 256 tokens"`: what a folder declares."""
    pooling, normalize = declared_pooling(folder)
    length = declared_sequence_length(folder)
    parts = [f"{model_type(folder)} encoder", f"{pooling or 'mean'} pooling"]
    return ", ".join(parts + (["normalised"] if normalize else []) + ([f"{length} tokens"] if length else []))
