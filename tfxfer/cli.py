"""The `tfxfer` command (click).

    tfxfer demo                                   the offline main job
    tfxfer fit image --source mobilenet_v2/imagenet --data cifar10 --run-dir runs/cifar10
    tfxfer fit text --source embedded --data 20news --run-dir runs/20news
    tfxfer evaluate runs/cifar10                  test figures of a finished run
    tfxfer predict runs/tickets new.csv           named predictions for new inputs
    tfxfer export runs/cifar10 served/cifar10     a SavedModel serving raw inputs
    tfxfer sources                                presets, and what is cached here

`tfxfer COMMAND --help` lists each command's options.

`tfxfer --help`, `--version` and option errors answer before TensorFlow
loads (the work each command does is imported when it runs), and
TensorFlow's C++ start-up lines are hidden unless `TFXFER_VERBOSE=1`.
"""

import os
import sys

import click

from tfxfer.choices import PRECISIONS, STRATEGIES, TEXT_ENCODERS
from tfxfer.errors import ExportRefusedError, MissingPackageError
from tfxfer.fit_config import FitConfig
from tfxfer.settings import show_tensorflow_logs


def one_line_error(error):
    """The CLI's message for an expected failure (bad input, a file, the
    machine's limits), or None for a bug, whose traceback should show."""
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is not None and isinstance(error, tensorflow.errors.OpError):
        return f"TensorFlow could not run the model: {error.message.splitlines()[0]}"
    if isinstance(error, MemoryError):
        return "Out of memory: lower --batch-size (or --input-size for images), or use a larger machine."
    if isinstance(error, EOFError):
        return f"A file ended early (truncated download or copy?): {error}. Fetch it again."
    if isinstance(error, OSError) and not isinstance(error, FileNotFoundError) and error.filename:
        reason = error.strerror or str(error)
        return f"{reason}: '{error.filename}' ({type(error).__name__}); check the path and its permissions."
    if isinstance(error, ValueError | OSError | FloatingPointError | MissingPackageError | ExportRefusedError):
        return " ".join(str(error).split()) or type(error).__name__
    return None


def start_tensorflow_quietly():
    """Imports TensorFlow and starts its devices with its C++ start-up lines
    (CUDA probes, oneDNN notice, absl's preamble) sent nowhere; errors still
    raise. `TFXFER_VERBOSE=1` shows them."""
    if "tensorflow" in sys.modules or show_tensorflow_logs():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)  # the C++ side writes to the descriptor, not to sys.stderr
    try:
        import tensorflow as tf

        tf.config.list_logical_devices()  # the device probes log here too
    finally:
        os.dup2(saved, 2)
        os.close(null)
        os.close(saved)


def _recipes():
    """The work behind the commands, with TensorFlow started quietly."""
    start_tensorflow_quietly()
    from tfxfer import recipes

    return recipes


class _Commands(click.Group):
    """The command group whose expected failures end in one line (`one_line_error`)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:  # `tfxfer predict ... | head`: the reader has all it wanted
            sys.stderr.close()
            return None
        except Exception as error:
            message = one_line_error(error)
            if message is None:
                raise
            raise click.ClickException(message) from error


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="tfxfer")
def main():
    """Transfer learning on Keras 3 / TensorFlow."""


@main.command()
@click.option("--seeds", default=5, show_default=True, type=click.IntRange(min=1), help="Seeds to average over.")
@click.option("--budgets", default="5,10", show_default=True, help="Labels per class, comma-separated.")
@click.option("--epochs", default=30, show_default=True, help="Epochs per image stage.")
@click.option("--text-epochs", default=90, show_default=True, help="Epochs of the text head.")
@click.option(
    "--plots",
    "plots_dir",
    default="runs/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the label-budget plots.",
)
def demo(seeds, budgets, epochs, text_epochs, plots_dir):
    """Transfer the embedded sources to digits 5-9 and to two newsgroups (offline)."""
    _recipes()
    from tfxfer import demo as main_job

    budgets = tuple(int(b) for b in budgets.split(","))
    main_job.main(budgets=budgets, seeds=seeds, epochs=epochs, text_epochs=text_epochs, plots_dir=plots_dir)


class _WordOrNumber(click.ParamType):
    """One of `words`, or a number (`kind`, from 0; above 0 for a float);
    checked before any work starts."""

    def __init__(self, *words, kind=int):
        self.words, self.kind = words, kind
        self.name = "|".join((*words, "N" if kind is int else "RATE"))

    def convert(self, value, param, ctx):
        if value in self.words or (isinstance(value, self.kind) and not isinstance(value, str)):
            return value
        noun = "an integer" if self.kind is int else "a number"
        try:
            number = self.kind(value)
        except ValueError:
            self.fail(f"{value!r} is not {' or '.join(self.words)} or {noun}", param, ctx)
        if number < 0 or (self.kind is float and number == 0):
            self.fail(
                f"{number} is too small; pass {'0 or more' if self.kind is int else 'a rate above 0'}", param, ctx
            )
        return number


def _shown(name, default, **kwargs):
    """An option whose default `--help` shows."""
    return click.option(name, default=default, show_default=True, **kwargs)


_DATA_OPTIONS = [
    click.option(
        "--test-data",
        help="A separate test set, in any form --data takes (its test split where it has one) "
        "[default: the data's own test split, or a stratified 20% held out].",
    ),
    click.option(
        "--label-column",
        help="The label column of a CSV/TSV/JSON Lines file [default: label, labels, class, category, target].",
    ),
    click.option(
        "--multi-label",
        is_flag=True,
        help="Each example may have several labels ('a|b' in a table cell, a list in JSON Lines): one sigmoid "
        "per class, a threshold per class chosen on the validation split.",
    ),
    click.option(
        "--class-weight",
        type=click.Choice(["balanced"]),
        help="Weigh each class inversely to its share of the training labels (imbalanced classes).",
    ),
]  # what both `fit` commands read their data with


def _training_options(command):
    """The options `fit image` and `fit text` share."""
    options = [
        click.option(
            "--run-dir",
            required=True,
            type=click.Path(file_okay=False),
            help="Folder for config, metrics, TensorBoard logs, checkpoints, plots, model and export. "
            "Rerunning with the same folder resumes an interrupted fine-tuning.",
        ),
        _shown(
            "--head-epochs",
            "auto",
            type=_WordOrNumber("auto"),
            help="Epochs of the head on cached source features (0 to skip). auto: at least "
            "300 optimizer steps, early stopping on the validation split.",
        ),
        _shown(
            "--epochs",
            "auto",
            type=_WordOrNumber("auto"),
            help="Fine-tuning epochs (0: feature extraction only). auto: at least 300 optimizer steps "
            "and 5 epochs, early stopping on the validation split; none for the hybrid text encoder, "
            "whose head is solved exactly.",
        ),
        _shown(
            "--unfreeze",
            "all",
            type=_WordOrNumber("all"),
            help="Top block groups of the source to fine-tune, or 'all' (more than the source has: all).",
        ),
        _shown(
            "--learning-rate",
            "auto",
            type=_WordOrNumber("auto", kind=float),
            help="Peak fine-tuning rate of the head. auto: 1e-3, the source at a tenth of it; "
            "word vectors: 1e-2 for both.",
        ),
        _shown("--batch-size", 64, type=click.IntRange(min=1), help="Global batch size (split across replicas)."),
        click.option(
            "--labels-per-class",
            type=click.IntRange(min=2),
            help="Keep at most this many training examples per class (at least 2: the validation split takes one).",
        ),
        _shown(
            "--unlabelled",
            "auto",
            help="Unlabelled examples for self-training the head: 'rest' (the training examples "
            "--labels-per-class dropped), 'none', or a path read as --data is (its labels unused). "
            "auto: 'rest' when --labels-per-class dropped any, else none.",
        ),
        click.option(
            "--strategy",
            "strategy_name",
            default="auto",
            show_default=True,
            type=click.Choice(STRATEGIES),
            help="tf.distribute strategy (auto: from the machine).",
        ),
        _shown("--precision", "float32", type=click.Choice(PRECISIONS)),
        click.option(
            "--export/--no-export",
            default=True,
            show_default=True,
            help="Write a SavedModel serving raw inputs to RUN_DIR/export.",
        ),
        _shown("--seed", 0, type=click.IntRange(0, 2**32 - 1)),
        click.option(
            "--overwrite",
            is_flag=True,
            help="Start over in a --run-dir that holds a run with other settings (removes tfxfer's files only).",
        ),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    for option in reversed([*_DATA_OPTIONS, *options]):
        command = option(command)
    return command


@main.group()
def fit():
    """Train a classifier on a pretrained source: head, then fine-tuning."""


@fit.command("image")
@_shown("--source", "mobilenet_v2/imagenet", help="Preset (see `tfxfer sources`), TF-Hub handle, or SavedModel folder.")
@_shown(
    "--data",
    "cifar10",
    help="cifar10, digits, or a path: a folder of class folders, a CSV/TSV/JSON Lines table of image paths "
    "(relative to it) and labels, or a CIFAR-10 archive/folder/.npz.",
)
@click.option("--image-column", help="The image-path column of a table [default: path, image, file, filename].")
@_shown(
    "--input-size",
    96,
    type=click.IntRange(32, 4096),
    help="Side the images are resized to (Keras Applications presets; image folders are read at this size).",
)
@click.option(
    "--weights",
    type=click.Path(exists=True, dir_okay=False),
    help="A local Keras Applications .h5 weights file (no top) for the preset's architecture.",
)
@click.option(
    "--augment/--no-augment", default=None, help="Flip + pad/crop while fine-tuning [default: on, off for digits]."
)
@_training_options
def fit_image(**options):
    """Fit an image classifier, e.g. MobileNetV2 (ImageNet) on CIFAR-10."""
    _fit("image", options)


@fit.command("text")
@_shown(
    "--source",
    "embedded",
    help="'embedded' (the shipped word vectors), a word2vec/GloVe/fastText file, a KerasHub preset (a name, "
    "a kaggle:// or hf:// handle, a preset folder), a local Hugging Face / sentence-transformers folder of a "
    "BERT-family encoder, or a TF-Hub text module.",
)
@_shown(
    "--data",
    "20news",
    help="20news, mini_newsgroup (offline sample), or a path: a CSV/TSV/JSON Lines file, a folder of class "
    "folders of text files, or the 20 Newsgroups archive or its folders.",
)
@click.option("--text-column", help="The text column of a table [default: text, sentence, review, content, body].")
@_shown("--encoding", "utf-8", help="Text encoding of tables and text files (e.g. latin-1, cp1252, utf-16).")
@_shown(
    "--remove",
    "headers,footers,quotes",
    help="Parts of each 20 Newsgroups post to strip, comma-separated ('' keeps all; tables and text "
    "folders are read as they are).",
)
@click.option(
    "--text-encoder",
    type=click.Choice(TEXT_ENCODERS),
    help="hybrid (TF-IDF of 1-2 grams beside the pooled word vectors or the encoder's vector), vectors (those "
    "alone) or rnn (word vectors only: a bidirectional GRU over the token vectors)  [default: hybrid; vectors "
    "for a KerasHub classification backbone].",
)
@click.option(
    "--sequence-length",
    type=click.IntRange(8, 8192),
    help="KerasHub encoders: tokens read per text, the rest cut (the share cut is reported) [default: the "
    "encoder's own, e.g. a sentence-transformers folder's max_seq_length].",
)
@_shown(
    "--contrastive",
    "auto",
    type=_WordOrNumber("auto"),
    help="Contrastive (SetFit) fine-tuning of a sentence encoder on pairs of labelled texts before the head: "
    "iterations (each pairs every labelled text with one of its class and one of another), 0 for none. "
    "auto: about 2,000 pairs when there are at most 16 labels per class and no unlabelled texts (with them, "
    "self-training the frozen encoder's head scored higher).",
)
@_training_options
def fit_text(remove, **options):
    """Fit a text classifier, e.g. word vectors on 20 Newsgroups."""
    _fit("text", {**options, "remove": tuple(part for part in remove.split(",") if part)})


def _fit(kind, options):
    run_dir, overwrite = options.pop("run_dir"), options.pop("overwrite")
    options["strategy"] = options.pop("strategy_name")
    config = FitConfig(kind=kind, **options)
    results = _recipes().fit(config, run_dir, overwrite=overwrite)
    click.echo(f"{_figures(results)}; wrote {os.path.abspath(run_dir)}")


def _figures(results, data=None):
    """The line of test figures `fit` and `evaluate` print."""
    accuracy = "subset accuracy" if "micro_f1" in results else "test accuracy"
    extra = f", micro-F1 {100 * results['micro_f1']:.2f}%" if "micro_f1" in results else ""
    on = f"on {results['test_examples']} examples" + (f" of {data}" if data else "")
    return (
        f"{accuracy} {100 * results['test_accuracy']:.2f}%, macro-F1 {100 * results['macro_f1']:.2f}%{extra} "
        f"(loss {results['test_loss']:.4f}) {on}"
    )


_SAFE_MODE = click.option(
    "--safe-mode/--no-safe-mode",
    default=True,
    show_default=True,
    help="Load model.keras in Keras' safe mode; models holding a SavedModel module need --no-safe-mode.",
)
_RUN_DIR = click.argument("run_dir", type=click.Path(exists=True, file_okay=False))


@main.command()
@_RUN_DIR
@click.option("--data", help="Data to test on (default: the run's own test split).")
@_SAFE_MODE
def evaluate(run_dir, data, safe_mode):
    """Test figures and confusion matrix of a finished run (RUN_DIR/evaluation.json)."""
    recipes = _recipes()
    results, name = recipes.evaluate_run(run_dir, data, safe_mode=safe_mode)
    click.echo(_figures(results, name))


@main.command()
@_RUN_DIR
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    help="Write the predictions to FILE.csv or FILE.jsonl [default: CSV on standard output].",
)
@_shown("--top-k", 1, type=click.IntRange(min=1), help="Classes named per input, best first.")
@_SAFE_MODE
def predict(run_dir, inputs, output, top_k, safe_mode):
    """Label INPUTS with RUN_DIR's model: image files or folders, a CSV/TSV/JSON Lines table in the training
    format (its labels, if any, give the accuracy), a text file of one text per line, or - for standard input."""
    rows, accuracy = _recipes().predict_run(run_dir, inputs, top_k=top_k, output=output, safe_mode=safe_mode)
    if output:
        click.echo(f"wrote {len(rows)} predictions to {output}", err=output is None)
    if accuracy is not None:
        click.echo(f"accuracy {100 * accuracy:.2f}% on {len(rows)} labelled inputs", err=output is None)


@main.command("export")
@_RUN_DIR
@click.argument("out", type=click.Path())
@_shown(
    "--format",
    "saved_model",
    type=click.Choice(["saved_model", "litert", "onnx"]),
    help="saved_model (TensorFlow Serving), litert (phones, microcontrollers: OUT/model.tflite) or onnx "
    "(ONNX Runtime: OUT/model.onnx; these two need `pip install 'tfxfer[deploy]'`).",
)
@_shown(
    "--quantize",
    "auto",
    type=click.Choice(["auto", "none", "dynamic", "float16", "int8", "int8-only"]),
    help="auto: int8 for a LiteRT image model (calibrated on 300 training images; up to 3 layers kept in float "
    "where that holds the top class), float16 for other LiteRT models, none elsewhere. int8-only: every op in "
    "int8, for integer-only hardware. ONNX takes none or dynamic.",
)
@_SAFE_MODE
def export_command(run_dir, out, format, quantize, safe_mode):
    """Write RUN_DIR's model to OUT, verified: a SavedModel serving raw images or strings, or a LiteRT or ONNX
    file run against the Keras model on the test split (figures in OUT/manifest.json)."""
    path, manifest = _recipes().export_run(run_dir, out, format=format, quantize=quantize, safe_mode=safe_mode)
    if manifest is None:
        click.echo(
            f"exported to {path}: `serve` takes a batch of raw inputs, returns class probabilities and the top "
            "classes' names and ids; labels.txt names the classes"
        )
        return
    check = manifest["verification"]
    size = os.path.getsize(os.path.join(path, manifest["file"]))
    accuracy = ""
    if "accuracy" in check:
        accuracy = f", test accuracy {100 * check['accuracy']:.2f}% (Keras {100 * check['keras_accuracy']:.2f}%)"
    click.echo(
        f"exported to {os.path.join(path, manifest['file'])} ({manifest['quantize']}, {size / 1e6:.2f} MB): "
        f"top-1 agreement with Keras {100 * check['top1_agreement']:.2f}% on {check['examples']} test examples, "
        f"largest probability difference {check['max_probability_difference']:.2g}{accuracy}; "
        f"checked with {check['runtime']}"
    )


@main.command()
@click.option(
    "--rank",
    "rank_data",
    help="Rank image sources on this data (cifar10, digits, or a path, as `fit image --data`) by LogME, "
    "H-score, LEEP and NCE, before any training.",
)
@click.option(
    "--candidates",
    help="Comma-separated sources to rank [default: the image presets with weights on this machine].",
)
@_shown("--input-size", 96, type=click.IntRange(32, 4096), help="Side the images are resized to, for --rank.")
@_shown("--examples", 1000, type=click.IntRange(min=20), help="Training images scored, for --rank.")
def sources(rank_data, candidates, input_size, examples):
    """The preset sources, and which are on this machine; with --rank, how well each suits your data."""
    recipes = _recipes()
    if rank_data:
        names = [name for name in (candidates or "").split(",") if name] or recipes.rankable_image_presets()
        config = FitConfig(kind="image", source=names[0], data=rank_data, input_size=input_size)
        rows = recipes.rank_image_sources(names, recipes.recipe_for(config), examples)
        click.echo(f"{'source':24} {'LogME':>8} {'H-score':>8} {'LEEP':>8} {'NCE':>8}   (higher is better)")
        for row in rows:
            scores = f"{row['logme']:8.4f} {row['h_score']:8.3f} {row['leep']:8.4f} {row['nce']:8.4f}"
            click.echo(f"{row['source']:24} {scores}")
        return
    for name, kind, description, location in recipes.source_rows():
        click.echo(f"{name:24} {kind:5}  {description}")
        if location:
            click.echo(f"{'':24} {'':5}  {location}")


if __name__ == "__main__":
    main()
