"""The `tfxfer` command (click).

    tfxfer demo                                   the offline main job
    tfxfer fit image --source mobilenet_v2/imagenet --data cifar10 --run-dir runs/cifar10
    tfxfer fit text --source embedded --data 20news --run-dir runs/20news
    tfxfer evaluate runs/cifar10                  test figures of a finished run
    tfxfer export runs/cifar10 served/cifar10     a SavedModel serving raw inputs
    tfxfer sources                                presets, and what is cached here

`tfxfer COMMAND --help` lists each command's options.
"""

import json
import sys

import click
import numpy as np

STRATEGY_CHOICES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
PRECISION_CHOICES = ("float32", "mixed_float16", "mixed_bfloat16")


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
    if isinstance(error, ValueError | OSError | FloatingPointError):
        return " ".join(str(error).split()) or type(error).__name__
    return None


class _Commands(click.Group):
    """The command group whose expected failures end in one line (`one_line_error`)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
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
@click.option("--seeds", default=5, show_default=True, help="Seeds to average over.")
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
            type=click.Choice(STRATEGY_CHOICES),
            help="tf.distribute strategy (auto: from the machine).",
        ),
        _shown("--precision", "float32", type=click.Choice(PRECISION_CHOICES)),
        click.option(
            "--export/--no-export",
            default=True,
            show_default=True,
            help="Write a SavedModel serving raw inputs to RUN_DIR/export.",
        ),
        _shown("--seed", 0),
        click.option(
            "--overwrite",
            is_flag=True,
            help="Start over in a --run-dir that holds a run with other settings (removes tfxfer's files only).",
        ),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.group()
def fit():
    """Train a classifier on a pretrained source: head, then fine-tuning."""


@fit.command("image")
@_shown("--source", "mobilenet_v2/imagenet", help="Preset (see `tfxfer sources`), TF-Hub handle, or SavedModel folder.")
@_shown(
    "--data", "cifar10", help="cifar10, digits, or a path: CIFAR-10 archive/folder/.npz, or a folder of class folders."
)
@_shown(
    "--input-size", 96, type=click.IntRange(min=32), help="Side the images are resized to (Keras Applications presets)."
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
def fit_image(source, data, input_size, weights, augment, **options):
    """Fit an image classifier, e.g. MobileNetV2 (ImageNet) on CIFAR-10."""
    from tfxfer import recipes
    from tfxfer.data import datasets
    from tfxfer.data.pipelines import image_dataset

    def load(path):
        return datasets.load_image_data(path, image_size=(input_size, input_size), seed=options["seed"])

    loaded = load(data)
    augment = data != "digits" if augment is None else augment

    def build(num_classes, unlabelled):
        return recipes.image_model(source, num_classes, input_size=input_size, weights=weights)

    def train(x, y):
        return image_dataset(
            x, y, batch_size=options["batch_size"], shuffle=True, augment=augment, seed=options["seed"]
        )

    _fit(
        "image",
        {"source": source, "data": data, "input_size": input_size, "weights": weights, "augment": augment},
        loaded,
        build,
        train,
        load,
        **options,
    )


@fit.command("text")
@_shown(
    "--source",
    "embedded",
    help="'embedded' (the shipped word vectors), a word2vec/GloVe/fastText file, or a TF-Hub text module.",
)
@_shown(
    "--data",
    "20news",
    help="20news, mini_newsgroup (offline sample), or a path: the 20 Newsgroups archive or its folders.",
)
@_shown("--remove", "headers,footers,quotes", help="Parts of each post to strip, comma-separated ('' keeps all).")
@_shown(
    "--text-encoder",
    "hybrid",
    type=click.Choice(("hybrid", "vectors", "rnn")),  # TextClassifier.TEXT_ENCODERS, without importing TF
    help="Word-vector sources: hybrid (TF-IDF of 1-2 grams beside the pooled vectors), vectors (pooled only) "
    "or rnn (a bidirectional GRU over the token vectors).",
)
@_training_options
def fit_text(source, data, remove, text_encoder, **options):
    """Fit a text classifier, e.g. word vectors on 20 Newsgroups."""
    from tfxfer import recipes
    from tfxfer.data import datasets

    remove = tuple(part for part in remove.split(",") if part)

    def load(path):
        return datasets.load_text_data(path, remove=remove, seed=options["seed"])

    loaded = load(data)

    def build(num_classes, unlabelled):
        # The vocabulary comes from all training text: unlabelled text is cheap.
        texts = loaded.x_train if unlabelled is None else np.concatenate([loaded.x_train, unlabelled])
        return recipes.text_model(source, texts, num_classes, encoder=text_encoder, seed=options["seed"])

    settings = {"source": source, "data": data, "remove": list(remove), "text_encoder": text_encoder}
    _fit("text", settings, loaded, build, None, load, **options)


def _fit(
    kind,
    settings,
    data,
    build,
    train,
    load,
    *,
    run_dir,
    head_epochs,
    epochs,
    unfreeze,
    learning_rate,
    batch_size,
    labels_per_class,
    unlabelled,
    strategy_name,
    precision,
    export,
    seed,
    overwrite,
    quiet,
):
    from tfxfer.run_folder import RunFolder

    data = data.limited(labels_per_class, seed)
    x_unlabelled = _unlabelled(unlabelled, data, load)
    run = RunFolder(run_dir)
    config = {
        "command": f"fit {kind}",
        **settings,
        "head_epochs": head_epochs,
        "epochs": epochs,
        "unfreeze": unfreeze,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "labels_per_class": labels_per_class,
        "unlabelled": unlabelled,
        "strategy": strategy_name,
        "precision": precision,
        "seed": seed,
        "class_names": data.class_names,
        "export": export,
    }
    with run.lock():  # one process per folder; its errors reach the one-line mapping in `main`
        run.start(config, overwrite)
        if export:
            run.check_export_free()
        _train(kind, run, data, build, train, x_unlabelled, config, quiet)


def _train(kind, run, data, build, train, x_unlabelled, config, quiet):
    import keras

    from tfxfer import distribute, recipes

    seed = config["seed"]
    distribute.set_precision(config["precision"])
    strategy = distribute.strategy(config["strategy"])
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = build(len(data.class_names), x_unlabelled)
    unlabelled_count = "" if x_unlabelled is None else f", {len(x_unlabelled)} unlabelled"
    click.echo(
        f"{kind}: {len(data.x_train)} training, {len(data.x_test)} test examples{unlabelled_count}, "
        f"{len(data.class_names)} classes; {strategy.num_replicas_in_sync} replica(s); run folder {run.path}"
    )
    results = recipes.train_and_report(
        model,
        data,
        run,
        head_epochs=config["head_epochs"],
        epochs=config["epochs"],
        unfreeze=config["unfreeze"],
        batch_size=config["batch_size"],
        learning_rate=config["learning_rate"],
        train=train,
        unlabelled=x_unlabelled,
        export=config["export"],
        seed=seed,
        verbose=0 if quiet else "auto",
    )
    click.echo(
        f"test accuracy {100 * results['test_accuracy']:.2f}% (loss {results['test_loss']:.4f}) on "
        f"{results['test_examples']} examples; wrote {run.path}"
    )


def _unlabelled(choice, data, load):
    """The unlabelled inputs `--unlabelled` names (None for none)."""
    if choice in ("auto", "rest"):
        if choice == "rest" and data.x_unlabelled is None:
            raise click.ClickException(
                "--unlabelled rest takes the examples --labels-per-class dropped, and it dropped none: "
                "pass --labels-per-class N, or --unlabelled PATH."
            )
        return data.x_unlabelled
    if choice == "none":
        return None
    return load(choice).x_train


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--data", help="Data to test on (default: the run's own test split).")
@click.option(
    "--safe-mode/--no-safe-mode",
    default=True,
    show_default=True,
    help="Load model.keras in Keras' safe mode; models holding a SavedModel module need --no-safe-mode.",
)
def evaluate(run_dir, data, safe_mode):
    """Test figures and confusion matrix of a finished run (RUN_DIR/evaluation.json)."""
    from tfxfer import plots, recipes
    from tfxfer.data import datasets
    from tfxfer.run_folder import RunFolder

    run = RunFolder(run_dir)
    config = run.read_config()
    model = recipes.load_run_model(run, safe_mode=safe_mode)
    name = data or config["data"]
    if config["command"] == "fit image":
        size = config["input_size"]
        loaded = datasets.load_image_data(name, image_size=(size, size), seed=config["seed"])
    else:
        loaded = datasets.load_text_data(name, remove=tuple(config["remove"]), seed=config["seed"])
    if "class_names" in config and list(loaded.class_names) != list(config["class_names"]):
        raise click.ClickException(
            f"{name} has the classes {loaded.class_names}, but the run was trained on {config['class_names']}: "
            "its predictions would be scored against other labels. Pass data with the run's classes, in its order."
        )
    results = recipes.evaluate_model(model, loaded)
    predictions = results.pop("predictions")
    plots.confusion_matrix(
        loaded.y_test, predictions, loaded.class_names, run.file("plots", "evaluation_confusion.png"), title=str(name)
    )
    with open(run.file("evaluation.json"), "w") as file:
        json.dump({"data": name, **results}, file, indent=2)
    click.echo(
        f"test accuracy {100 * results['test_accuracy']:.2f}% (loss {results['test_loss']:.4f}) "
        f"on {results['test_examples']} examples of {name}"
    )


@main.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path())
@click.option(
    "--safe-mode/--no-safe-mode",
    default=True,
    show_default=True,
    help="Load model.keras in Keras' safe mode; models holding a SavedModel module need --no-safe-mode.",
)
def export_command(run_dir, out, safe_mode):
    """Write RUN_DIR's model to OUT as a SavedModel serving raw images or strings."""
    from tfxfer import recipes
    from tfxfer.exporting import export
    from tfxfer.run_folder import RunFolder

    model = recipes.load_run_model(RunFolder(run_dir), safe_mode=safe_mode)
    try:
        path = export(model, out)
    except FileExistsError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"exported to {path}: `serve` takes a batch of raw inputs, returns class probabilities")


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
@_shown("--input-size", 96, type=click.IntRange(min=32), help="Side the images are resized to, for --rank.")
@_shown("--examples", 1000, type=click.IntRange(min=20), help="Training images scored, for --rank.")
def sources(rank_data, candidates, input_size, examples):
    """The preset sources, and which are on this machine; with --rank, how well each suits your data."""
    from tfxfer.sources.kerashub import preset_rows
    from tfxfer.sources.registry import hub_cache_modules, presets

    if rank_data:
        _rank(rank_data, candidates, input_size, examples)
        return
    for preset in presets():
        aliases = f" (alias {', '.join(preset.aliases)})" if preset.aliases else ""
        click.echo(f"{preset.name:24} {preset.kind:5}  {preset.description}{aliases}")
        click.echo(f"{'':24} {'':5}  {preset.location}")
    for name, folder in hub_cache_modules():
        click.echo(f"{'tfhub: ' + name:24} {'':5}  cached: {folder}")
    for name, kind, description, location in preset_rows():
        click.echo(f"{'kerashub: ' + name:24} {kind:5}  {description}")
        click.echo(f"{'':24} {'':5}  {location}")


def _rank(data, candidates, input_size, examples):
    from tfxfer import recipes
    from tfxfer.data import datasets
    from tfxfer.sources.registry import presets

    names = [name for name in (candidates or "").split(",") if name] or [
        preset.name for preset in presets("image") if preset.available_offline and preset.weights != "random"
    ]
    loaded = datasets.load_image_data(data, image_size=(input_size, input_size))
    rows = recipes.rank_image_sources(names, loaded, input_size, examples)
    click.echo(f"{'source':24} {'LogME':>8} {'H-score':>8} {'LEEP':>8} {'NCE':>8}   (higher is better)")
    for row in rows:
        click.echo(f"{row['source']:24} {row['logme']:8.4f} {row['h_score']:8.3f} {row['leep']:8.4f} {row['nce']:8.4f}")


if __name__ == "__main__":
    main()
