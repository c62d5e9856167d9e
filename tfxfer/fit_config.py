"""`FitConfig`: the settings of one `tfxfer fit` run, typed and frozen.

The CLI parses its options into one; the recipes read it; its record is the
run folder's `config.json`. Each field says whether it is part of the run's
identity (a rerun in the same folder with another value is refused) or
only of how it runs (`strategy`, `precision`, `export`, `quiet`). It
imports nothing heavy, so the CLI checks every value before TensorFlow
loads.

>>> config = FitConfig(kind="text", source="embedded", data="mini_newsgroup", seed=1)
>>> config.record(["a", "b"])["command"], config.batch_size
('fit text', 64)
>>> FitConfig.from_record(config.record(["a", "b"])) == config
True
"""

import dataclasses

from tfxfer.choices import PRECISIONS, STRATEGIES, TEXT_ENCODERS
from tfxfer.validation import check_choice, check_encoding, check_number, check_seed

SCHEMA = 1  # the layout of config.json; a record without it is from before it had one
KINDS = ("image", "text")
AUTO = "auto"


def _setting(default, identity=True, kinds=KINDS):
    return dataclasses.field(default=default, metadata={"identity": identity, "kinds": kinds})


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """What `tfxfer fit image|text` was asked to do (`tfxfer fit ... --help`
    documents each option of the same name)."""

    kind: str
    source: str
    data: str
    head_epochs: object = _setting(AUTO)
    epochs: object = _setting(AUTO)
    unfreeze: object = _setting("all")
    learning_rate: object = _setting(AUTO)
    batch_size: int = _setting(64)
    labels_per_class: int | None = _setting(None)
    unlabelled: str = _setting(AUTO)
    seed: int = _setting(0)
    test_data: str | None = _setting(None)
    label_column: str | None = _setting(None)
    multi_label: bool = _setting(False)
    class_weight: object = _setting(None)  # None, "balanced" or {class name: weight}
    strategy: str = _setting(AUTO, identity=False)
    precision: str = _setting("float32", identity=False)
    export: bool = _setting(True, identity=False)
    quiet: bool = _setting(False, identity=False)
    # images
    input_size: int = _setting(96, kinds=("image",))
    weights: str | None = _setting(None, kinds=("image",))
    augment: bool | None = _setting(None, kinds=("image",))  # None: on, off for digits
    image_column: str | None = _setting(None, kinds=("image",))
    # texts
    remove: tuple = _setting(("headers", "footers", "quotes"), kinds=("text",))
    text_encoder: str | None = _setting(None, kinds=("text",))  # None: hybrid for word vectors, sentence encoders
    sequence_length: int | None = _setting(None, kinds=("text",))  # KerasHub encoders; None: the encoder's own
    contrastive: object = _setting(AUTO, kinds=("text",))  # iterations of SetFit's pairs, 0: none
    text_column: str | None = _setting(None, kinds=("text",))
    encoding: str = _setting("utf-8", kinds=("text",))

    def __post_init__(self):
        check_choice("kind", self.kind, KINDS)
        check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("precision", self.precision, PRECISIONS)
        check_seed(self.seed)
        check_number("batch_size", self.batch_size, 1, integer=True)
        for name in ("head_epochs", "epochs"):
            if getattr(self, name) != AUTO:
                check_number(name, getattr(self, name), 0, integer=True, hint=" (or 'auto')")
        if self.unfreeze != "all":
            check_number("unfreeze", self.unfreeze, 0, integer=True, hint=" (or 'all')")
        if self.learning_rate != AUTO:
            check_number("learning_rate", self.learning_rate, 0, low_open=True, hint=" (or 'auto')")
        if self.labels_per_class is not None:
            check_number("labels_per_class", self.labels_per_class, 2, integer=True)
        check_number("input_size", self.input_size, 32, 4096, integer=True, hint=" pixels")
        if self.text_encoder is not None:
            check_choice("text_encoder", self.text_encoder, TEXT_ENCODERS)
        if self.sequence_length is not None:
            check_number("sequence_length", self.sequence_length, 8, 8192, integer=True, hint=" tokens")
        if self.contrastive != AUTO:
            check_number("contrastive", self.contrastive, 0, 1000, integer=True, hint=" (or 'auto')")
        check_encoding(self.encoding)
        if self.class_weight is not None and not isinstance(self.class_weight, dict):
            check_choice("class_weight", self.class_weight, ("balanced",))
        if self.multi_label and self.labels_per_class is not None:
            raise ValueError(
                "--labels-per-class draws examples class by class, which multi-label examples do not fall into: "
                "drop it (or --multi-label)."
            )
        object.__setattr__(self, "remove", tuple(self.remove))

    def fields(self, identity=None):
        """The names of this kind's settings (only those of the run's
        identity, or only the others, when `identity` is given)."""
        return [
            field.name
            for field in dataclasses.fields(self)
            if self.kind in field.metadata.get("kinds", KINDS)
            and field.name != "kind"
            and (identity is None or field.metadata.get("identity", True) == identity)
        ]

    def record(self, class_names):
        """`config.json`'s content: the command, this kind's settings and the classes."""
        settings = {name: getattr(self, name) for name in self.fields()}
        if "remove" in settings:
            settings["remove"] = list(self.remove)
        return {"schema": SCHEMA, "command": f"fit {self.kind}", **settings, "class_names": list(class_names)}

    @classmethod
    def from_record(cls, record):
        """The settings of a run folder's `config.json` (`record`); a record
        from another tfxfer version is read as far as it goes, and one this
        version cannot read is refused, naming what is wrong."""
        command = record.get("command", "")
        if not isinstance(command, str) or command.removeprefix("fit ") not in KINDS:
            raise ValueError(
                f"config.json names the command {command!r}, not 'fit image' or 'fit text': it was not written by "
                "`tfxfer fit`, or by a tfxfer this version cannot read; rerun the fit with this version."
            )
        if record.get("schema", SCHEMA) > SCHEMA:
            raise ValueError(
                f"config.json is of schema {record['schema']}, newer than this tfxfer's ({SCHEMA}): upgrade tfxfer."
            )
        kind = command.removeprefix("fit ")
        known = {field.name for field in dataclasses.fields(cls)}
        settings = {name: value for name, value in record.items() if name in known}
        missing = [name for name in ("source", "data") if name not in settings]
        if missing:
            raise ValueError(f"config.json lacks {missing}: it is damaged or from another tfxfer; rerun the fit.")
        return cls(**{**settings, "kind": kind})

    @classmethod
    def not_identity(cls):
        """The record's keys that a rerun may change (as `RunFolder.start` compares)."""
        return (
            "versions",
            "schema",
            "data_files",  # compared on its own (`tfxfer.data.identity`), naming the file that changed
            *(f.name for f in dataclasses.fields(cls) if not f.metadata.get("identity", True)),
        )
