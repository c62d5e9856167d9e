"""The runs behind the `tfxfer` command: a `FitConfig` in, a run folder out.

A recipe (`ImageRecipe`, `TextRecipe`; `recipe_for(config)`) knows one
kind's data, model and training pipeline, so `tfxfer fit`, `tfxfer
evaluate`, notebooks and scripts load, build and train the same way.
`fit(config, run_dir)` is what `tfxfer fit` runs: the head on cached
features, then `fine_tune`, then `self_train` with unlabelled data; test
figures, plots, `.keras` file and export, all into a `RunFolder`.
"""

import dataclasses
import json
import os
import time

import keras
import numpy as np

from tfxfer import deploy
from tfxfer.data import identity
from tfxfer.data.datasets import IMAGE_DATA, TEXT_DATA, data_from, image_examples, test_examples, text_examples
from tfxfer.data.image_folder import fit_images, load_image_files
from tfxfer.data.pipelines import image_dataset
from tfxfer.data.splits import shared_examples, stratified_split
from tfxfer.distribute import set_precision
from tfxfer.distribute import strategy as resolve_strategy
from tfxfer.evaluation import evaluate_model, load_model, test_figures
from tfxfer.exporting import export as export_model
from tfxfer.files import write_atomically, write_json
from tfxfer.fit_config import FitConfig
from tfxfer.log import logger, say
from tfxfer.memory import check_activations
from tfxfer.methods.transferability import rank_sources
from tfxfer.plots import confusion_matrix
from tfxfer.predicting import check_output, predict_examples, read_inputs, write_predictions
from tfxfer.run_folder import RunFolder
from tfxfer.sources.encoder_folders import cached_encoders, describe
from tfxfer.sources.kerashub import preset_rows
from tfxfer.sources.registry import get_preset, presets
from tfxfer.sources.resolve import hub_cache_modules, resolve
from tfxfer.tasks import ImageClassifier, TextClassifier
from tfxfer.tasks.labels import ClassLabels
from tfxfer.transfer import fine_tune, fit_head, self_train
from tfxfer.transfer.contract import contract
from tfxfer.transfer.contrastive import auto_iterations, contrastive_fine_tune
from tfxfer.transfer.feature_cache import source_features
from tfxfer.walk import walk_layers

LEAK_SHARE = 0.01  # test examples also in the training data, above which a fit warns (20 Newsgroups: 0.5 %)


class Recipe:
    """How one kind of task is loaded, built and trained."""

    kind = None

    def __init__(self, config):
        self.config = config

    def checked(self):
        """This recipe with the options resolved for its source (defaults
        that depend on it filled in); options that do not apply to the
        source are refused, before any work."""
        return self

    def load(self, data=None):
        """`data` (by default the run's own, with its `--test-data`) as a
        `tfxfer.data.Data` (image files as paths: `model_inputs` decodes
        them at the size the model takes)."""
        config = self.config
        test_data = config.test_data if data is None else None
        return data_from(self.read, data or config.data, test_data, config.seed, config.multi_label)

    def inputs(self, data):
        """All the inputs of `data` (its training split where it has one), labelled or not."""
        return self.read(data)[0].inputs

    def test_examples(self, data):
        """The `Examples` `evaluate` and `predict` take from `data`: its test
        split where it has one, else all of it (labelled or not)."""
        return test_examples(self.read, data)

    def read(self, data):
        """`(train, test or None)` `Examples` of `data`, as the run reads it."""
        raise NotImplementedError

    def reading(self):
        """The settings both kinds read their data with."""
        return {"label_column": self.config.label_column, "multi_label": self.config.multi_label}

    def labels(self, data):
        """The task model's label arguments for `data`."""
        return {"class_names": list(data.class_names), "multi_label": data.multi_label}

    def build(self, data, unlabelled=None):
        """The task model for `data`'s classes."""
        raise NotImplementedError

    def training_data(self, x, y):
        """A `tf.data` pipeline for fine-tuning, or None to fine-tune on the arrays."""
        return None

    def check_resources(self, model):
        """Refuses, before any data goes through `model`, settings this
        machine cannot run (activations beyond its memory)."""

    def check_values(self, x):
        """Warns when the training inputs `x` are far from what the source
        was trained on."""

    def model_inputs(self, model, x):
        """`x` in the form `model` takes (images: its channels and size)."""
        return x

    def for_model(self, model, data):
        """`data` with every split in the form `model` takes."""
        inputs = {name: getattr(data, name) for name in ("x_train", "x_test", "x_unlabelled")}
        return dataclasses.replace(
            data, **{name: None if x is None else self.model_inputs(model, x) for name, x in inputs.items()}
        )


class ImageRecipe(Recipe):
    kind = "image"

    def checked(self):
        resolve(self.config.source, "image")  # an unknown source is refused before the data is read
        augment = self.config.data != "digits" if self.config.augment is None else self.config.augment
        return ImageRecipe(dataclasses.replace(self.config, augment=augment))

    def read(self, data):
        return image_examples(data, image_column=self.config.image_column, decode=False, **self.reading())

    def build(self, data, unlabelled=None):
        config = self.config
        return ImageClassifier.from_preset(
            config.source,
            len(data.class_names),
            **self.labels(data),
            input_size=config.input_size,
            weights=config.weights,
        )

    def model_inputs(self, model, x):
        # Image files are decoded here, at the size the source takes (one
        # resize from the file, as the export does from raw images), or at
        # --input-size for a source that resizes itself; decoded images
        # (CIFAR-10, digits) are fitted to the source's channels and size.
        if x.dtype == object:
            height, width = model.image_shape[:2] if len(model.image_shape) == 3 else (None, None)
            size = self.config.input_size
            x = load_image_files(list(x), (height or size, width or size))
        return fit_images(x, model.image_shape)

    def check_resources(self, model):
        config = self.config
        fine_tunes = config.epochs != 0 and (config.epochs != "auto" or model.fine_tunes_by_default)
        check_activations(model, config.batch_size, fine_tunes, f"--input-size {config.input_size}")

    def check_values(self, x):
        preset = get_preset(self.config.source, kind="image")
        if preset is None or preset.input_range is None or not len(x):
            return
        low, high = preset.input_range
        sample = np.asarray(x[:: max(len(x) // 2048, 1)], dtype="float32")
        seen_low, seen_high = np.percentile(sample, [0.1, 99.9]).tolist()
        if seen_high < high / 8 or seen_high > 2 * high or seen_low < low - (high - low) / 2:
            scale = f" (x{high / seen_high:.3g} here)" if 0 < seen_high < high / 8 else ""
            logger.warning(
                f"The training images' values span [{seen_low:.3g}, {seen_high:.3g}], but the source "
                f"{preset.name!r} was trained on values in [{low}, {high}]: its features will mean little. "
                f"Scale the images to its range{scale} before fitting."
            )

    def training_data(self, x, y):
        config = self.config
        return image_dataset(x, y, batch_size=config.batch_size, shuffle=True, augment=config.augment, seed=config.seed)


class TextRecipe(Recipe):
    kind = "text"

    def checked(self):
        config = self.config
        form = resolve(config.source, "text").form
        if form != "kerashub":
            for option, value in (("--sequence-length", config.sequence_length), ("--contrastive", config.contrastive)):
                if value not in (None, "auto", 0):
                    raise ValueError(
                        f"{option} applies to KerasHub encoders (a preset, or a Hugging Face / sentence-transformers "
                        f"folder); {config.source!r} is {'word vectors' if form == 'vectors' else 'a TF-Hub module'}: "
                        f"drop {option}."
                    )
        if form == "module" and config.text_encoder is not None:
            raise ValueError(
                f"--text-encoder applies to word-vector sources and KerasHub encoders; {config.source!r} is a "
                "TF-Hub text module with its own encoder: drop --text-encoder."
            )
        if form == "kerashub" and config.text_encoder == "rnn":
            raise ValueError(
                "--text-encoder rnn reads word vectors token by token; a KerasHub encoder gives one vector per "
                "text: pass --text-encoder vectors or hybrid."
            )
        if form == "vectors":
            return TextRecipe(dataclasses.replace(config, text_encoder=config.text_encoder or "hybrid"))
        return self

    def read(self, data):
        config = self.config
        options = {"remove": config.remove, "text_column": config.text_column, "encoding": config.encoding}
        return text_examples(data, **options, **self.reading())

    def build(self, data, unlabelled=None):
        config = self.config
        # The vocabulary comes from all training text: unlabelled text is cheap.
        texts = data.x_train if unlabelled is None else np.concatenate([data.x_train, unlabelled])
        options = {"encoder": config.text_encoder} if config.text_encoder else {}
        if resolve(config.source, "text").form == "kerashub":
            # A sentence encoder beside a TF-IDF unless told; a classification backbone (made to be fine-tuned) alone.
            options = {"encoder": config.text_encoder or "auto", "sequence_length": config.sequence_length}
        return TextClassifier.from_preset(
            config.source, len(data.class_names), texts=texts, seed=config.seed, **self.labels(data), **options
        )


def recipe_for(config):
    """The recipe of `config`'s kind."""
    return {"image": ImageRecipe, "text": TextRecipe}[config.kind](config)


def fit(config, run_dir, overwrite=False):
    """What `tfxfer fit` runs: `config`'s data and source trained into the
    run folder `run_dir` (resumed when it holds the same run; another run's
    folder is refused unless `overwrite`). Returns the test figures."""
    recipe = recipe_for(_with_absolute_paths(config)).checked()
    config = recipe.config
    data = recipe.load().limited(config.labels_per_class, config.seed)
    unlabelled = _unlabelled(recipe, data)
    model, strategy = _built(recipe, data, unlabelled)  # refused here, the run folder is not made
    files = identity.fingerprints(_data_paths(config))
    run = RunFolder(run_dir)
    with run.lock():  # one process per folder
        if not overwrite:
            fix = "pass --overwrite to start over on the data as it is now"
            _refuse_changed_data(run, config, "rerun", fix, current=files)
        run.start({**config.record(data.class_names), "data_files": files}, overwrite)
        if config.export:
            run.check_export_free()
        return _train(recipe, run, model, strategy, data, unlabelled)


def _data_paths(config):
    return {"data": config.data, "test_data": config.test_data}


def _refuse_changed_data(run, config, what, fix, record=None, current=None):
    """Refuses to `what` a run whose `--data` / `--test-data` changed since
    it read them (`current`: their fingerprints now, where already taken)."""
    if record is None:
        if not os.path.isfile(run.config_file):
            return
        try:
            record = run.read_config()
        except ValueError:
            return  # a damaged config: `RunFolder.start` names it
    changed = identity.changes(_data_paths(config), record.get("data_files"), current)
    if changed:
        raise ValueError(f"Cannot {what} the run in '{run.path}': {'; '.join(changed)}. To go on, {fix}.")


def _with_absolute_paths(config):
    """`config` with its local data paths made absolute, so that the run
    folder names the same files wherever `evaluate` runs later."""
    paths = {}
    for name in ("data", "test_data", "unlabelled", "weights"):
        value = getattr(config, name)
        if value in (*IMAGE_DATA, *TEXT_DATA, "auto", "rest", "none"):
            continue  # a name, even where a folder of that name exists
        if isinstance(value, str) and os.path.exists(os.path.expanduser(value)):
            paths[name] = os.path.abspath(os.path.expanduser(value))
    return dataclasses.replace(config, **paths)


def _unlabelled(recipe, data):
    """The unlabelled inputs `--unlabelled` names (None for none)."""
    choice = recipe.config.unlabelled
    if choice == "auto" and recipe.config.multi_label:
        return None
    if choice in ("auto", "rest"):
        if choice == "rest" and data.x_unlabelled is None:
            raise ValueError(
                "--unlabelled rest takes the examples --labels-per-class dropped, and it dropped none: "
                "pass --labels-per-class N, or --unlabelled PATH."
            )
        return data.x_unlabelled
    if choice == "none":
        return None
    if recipe.config.multi_label:
        raise ValueError("--unlabelled: self-training pseudo-labels one class per example, not label sets: drop it.")
    try:
        pool = recipe.inputs(choice)
    except (ValueError, OSError) as error:
        raise type(error)(f"--unlabelled {choice}: {error}") from error
    if pool.dtype != object and pool.ndim != 4:  # image files, or images of any size: fitted to the source
        raise ValueError(
            f"--unlabelled {choice} holds arrays of shape {pool.shape[1:]}, not images (height, width, channels): "
            "pass image files, a folder of them, or an array of images."
        )
    return pool


def _built(recipe, data, unlabelled):
    """`(model, strategy)`: the task model built in the strategy's scope, and
    checked against this machine's resources."""
    config = recipe.config
    set_precision(config.precision)
    strategy = resolve_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)  # the run's one global seed, set by the application
    with strategy.scope():
        model = recipe.build(data, unlabelled)
    recipe.check_resources(model)
    return model, strategy


def _train(recipe, run, model, strategy, data, unlabelled):
    config = recipe.config
    data = recipe.for_model(model, data)
    recipe.check_values(data.x_train)
    unlabelled = None if unlabelled is None else recipe.model_inputs(model, unlabelled)
    leaked = shared_examples(data.x_train, data.x_test)
    if leaked and len(leaked) >= LEAK_SHARE * len(data.x_test):  # a few cross-posts are the data's; a share is a leak
        logger.warning(
            f"{len(leaked)} of the {len(data.x_test)} test examples are also in the training data (same content): "
            "the test figures count them as seen. Remove them from one of the two (--data, --test-data)."
        )
    extra = "" if unlabelled is None else f", {len(unlabelled)} unlabelled"
    logger.info(
        f"{config.kind}: {len(data.x_train)} training, {len(data.x_test)} test examples{extra}, "
        f"{len(data.class_names)} classes; {strategy.num_replicas_in_sync} replica(s); run folder {run.path}"
    )
    return train_and_report(model, data, run, config, train=recipe.training_data, unlabelled=unlabelled)


def train_and_report(model, data, run, config, *, train=None, unlabelled=None, validation_fraction=0.1):
    """Head on cached features, then `fine_tune`, then `self_train` on
    `unlabelled`; test metrics, plots, `.keras` file and export into `run`
    (a `RunFolder`), as `config` (a `FitConfig`) asks. Rerunning resumes
    from `run.checkpoints`.

    Args:
        train: a function `(x, y) -> tf.data.Dataset` for fine-tuning (e.g.
            augmented images); by default the training arrays.
        unlabelled: inputs without labels: the head is then self-trained
            last, on the features of the source fine-tuned on the labelled
            examples (CIFAR-10, 25 labels per class: 71.2 % test accuracy,
            against 63.4 % when fine-tuning followed on the frozen source's
            pseudo-labels, in a quarter of the time), or of the frozen
            source where nothing is fine-tuned.

    Returns:
        dict of the test figures (and `self_training`: its rounds).
    """
    verbose = 0 if config.quiet else "auto"
    (x_train, y_train), validation = data.held_out(validation_fraction, config.seed)
    started, histories, results = time.perf_counter(), {"head": None, "fine_tune": None}, {}
    epochs = _fine_tuning_epochs(model, config.epochs, verbose)
    self_trains = bool(config.head_epochs) and unlabelled is not None and len(unlabelled) > 0
    common = {"validation_data": validation, "verbose": verbose}
    weights = class_weights(config.class_weight, y_train, data.class_names)
    iterations = contrastive_iterations(model, config, y_train, self_trains)
    if iterations:
        histories["contrastive"] = contrastive_fine_tune(
            model, x_train, y_train, iterations=iterations, seed=config.seed, checkpoint_dir=run.checkpoints,
            callbacks=[run.tensorboard("contrastive")], verbose=verbose,
        )  # fmt: skip
    if config.head_epochs and (epochs or not self_trains):  # a head for fine-tuning to start from
        histories["head"] = fit_head(
            model,
            x_train,
            y_train,
            epochs=config.head_epochs,
            callbacks=[run.tensorboard("head")],
            progress=bool(verbose),
            solver="auto",
            refit=not epochs,
            batch_size=config.batch_size,
            class_weight=weights,
            **common,
        )  # fmt: skip  (a solved head with no fine-tuning after it may learn from the validation split too)
    if epochs:
        dataset = train(x_train, y_train) if train else None  # a pipeline (augmented images), or the arrays
        fit_data = (dataset, None) if dataset is not None else (x_train, y_train)
        histories["fine_tune"] = fine_tune(
            model, *fit_data, epochs=epochs, warmup_epochs=0, unfreeze=config.unfreeze,
            learning_rate=config.learning_rate, checkpoint_dir=run.checkpoints,
            callbacks=[run.tensorboard("fine_tune")], batch_size=None if dataset is not None else config.batch_size,
            class_weight=weights, **common,
        )["fine_tune"]  # fmt: skip
    if self_trains:
        result = self_train(
            model, x_train, y_train, unlabelled, validation, batch_size=config.batch_size, seed=config.seed,
            progress=bool(verbose), verbose=verbose,
        )  # fmt: skip
        results["self_training"] = {"best_round": result.best_round, "rounds": result.history}
    contract(model).ensure_compiled()
    if data.multi_label:
        results["thresholds"] = dict(zip(data.class_names, model.choose_thresholds(*validation)))
    results = {**evaluate_model(model, data, config.batch_size), **results}
    results["train_seconds"] = round(time.perf_counter() - started, 1)
    _write_run(run, model, data, histories, results, config.export)
    return results


CONTRASTIVE_LABELS_PER_CLASS = 16  # up to this many labels per class (median), `--contrastive auto` may run SetFit


def contrastive_iterations(model, config, y, self_trains=False):
    """SetFit's iterations for `--contrastive` (0: none). A number asks for
    it on any KerasHub text encoder. `"auto"` runs `auto_iterations` for a
    sentence encoder used frozen (alone or in the hybrid) when the labels
    are few, at most `CONTRASTIVE_LABELS_PER_CLASS` per class (the median
    class), and there are no unlabelled texts to self-train on: on 20
    Newsgroups at 10 labels per class it raised the solved head on the
    encoder alone (57.0 -> 59.9 %), but with the posts given no label,
    self-training the frozen hybrid scored higher without it (69.9 %
    against 67.1 %, in 7.5 minutes against 17; `benchmarks/sentence_encoders.py`)."""
    choice = getattr(config, "contrastive", 0)
    if choice == 0 or np.ndim(y) != 1:
        return 0
    if choice != "auto":
        return choice
    sentence_encoder = any(getattr(layer, "pooling", None) for layer in walk_layers(model.backbone))
    if self_trains or model.fine_tunes_by_default or not sentence_encoder:
        return 0
    counts = np.bincount(np.asarray(y))
    per_class = float(np.median(counts[counts > 0]))
    return auto_iterations(len(y)) if per_class <= CONTRASTIVE_LABELS_PER_CLASS else 0


def class_weights(choice, y, class_names):
    """`{class id: weight}` for `--class-weight` (`"balanced"`: inversely
    proportional to the class's share of `y`, as scikit-learn's), or None."""
    if choice is None:
        return None
    if np.ndim(y) == 2:
        raise ValueError("--class-weight weighs one class per example; multi-label data has sets: drop it.")
    if choice == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(y)
        return dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=y).tolist()))
    unknown = sorted(set(choice) - set(class_names))
    if unknown:
        raise ValueError(f"class_weight names {unknown}, which are not classes of the data ({list(class_names)}).")
    return {c: float(choice.get(name, 1.0)) for c, name in enumerate(class_names)}


def _fine_tuning_epochs(model, epochs, verbose):
    """`epochs`, except `"auto"` for a model that does not fine-tune by default (the hybrid text encoder)."""
    if epochs == "auto" and not model.fine_tunes_by_default:
        say(
            verbose,
            f"fine-tuning skipped: {type(model).__name__}.fine_tunes_by_default is False for this source "
            "(pass --epochs N to fine-tune anyway)",
        )
        return 0
    return epochs


def _write_run(run, model, data, histories, results, export):
    """Metrics, plots, the `.keras` file and the export (the predictions
    leave `results` for the plots)."""
    predictions = np.asarray(results.pop("predictions"))
    run.write_metrics(histories, results)
    run.write_plots(histories, data.y_test, predictions, data.class_names, title="test")
    write_atomically(run.model, model.save)
    if export:
        run.replace_export(lambda folder: export_model(model, folder))


def load_run(run_dir, safe_mode=True):
    """`(recipe, model, run folder, config.json's record)` of a finished run:
    its settings and its `model.keras` (in Keras' safe mode unless told otherwise)."""
    run = RunFolder(run_dir)
    record = run.read_config()
    if not os.path.isfile(run.model):
        raise FileNotFoundError(f"No model.keras in '{run.path}': did `tfxfer fit` finish there?")
    recipe = recipe_for(FitConfig.from_record(record))
    model = load_model(run.model, safe_mode=safe_mode)
    expected = {"image": ImageClassifier, "text": TextClassifier}[recipe.kind]
    if not isinstance(model, expected):
        raise ValueError(
            f"'{run.model}' holds a {type(model).__name__}, but '{run.path}' is a `fit {recipe.kind}` run (its "
            f"config.json): the model file was replaced by another's. Copy a run's whole folder, not its "
            f"model.keras, or rerun `tfxfer fit {recipe.kind} ... --overwrite` here."
        )
    names = record.get("class_names")
    if names and model.class_names == list(ClassLabels.numbered(len(names)).names) and len(names) == model.num_classes:
        model.class_labels = ClassLabels.of(len(names), names)  # a model saved before it kept its names
    return recipe, model, run, record


def evaluate_run(run_dir, data=None, safe_mode=True):
    """What `tfxfer evaluate` runs: a finished run's test figures on `data`
    (every example of it, or its test split where it has one; by default
    the run's own test split), written to `evaluation.json` with a
    confusion plot. Returns `(results, data name)`."""
    recipe, model, run, record = load_run(run_dir, safe_mode)
    if data is None:  # the run's own test split: only if its data is what the run read
        fix = "evaluate on it as it is now with --data PATH, or rerun the fit"
        _refuse_changed_data(run, recipe.config, "evaluate", fix, record)
    name = data or recipe.config.test_data or recipe.config.data
    x, y = run_test_data(recipe, model, data)
    results = test_figures(model, x, y, model.class_names)
    predictions = np.asarray(results.pop("predictions"))
    if np.ndim(y) == 1:
        path = run.file("plots", "evaluation_confusion.png")
        confusion_matrix(y, predictions, model.class_names, path, title=str(name))
    write_json(run.file("evaluation.json"), {"data": name, **results})
    return results, name


def run_test_data(recipe, model, data=None):
    """`(x, y)` to test a run's `model` on: `data`'s examples with their
    labels in the model's classes, or the run's own test split."""
    if data is None:
        loaded = recipe.load()
        if list(loaded.class_names) != model.class_names:
            raise ValueError(
                f"The run's data now has the classes {loaded.class_names}, but the model was trained on "
                f"{model.class_names}: the data changed since the fit. Pass --data, or rerun the fit."
            )
        return recipe.model_inputs(model, loaded.x_test), loaded.y_test
    examples = recipe.test_examples(data)
    y = examples.encoded(model.class_names, multi_label=model.multi_label)[0]
    return recipe.model_inputs(model, examples.inputs), y


def predict_run(run_dir, inputs, top_k=1, output=None, safe_mode=True, progress=True):
    """What `tfxfer predict` runs: a finished run's named predictions for
    `inputs` (see `tfxfer.predicting.read_inputs`), written to `output` (a
    .csv or .jsonl file; by default CSV on standard output). Returns
    `(rows, accuracy)`; the accuracy is None unless every input has a label."""
    check_output(output)
    recipe, model, _, _ = load_run(run_dir, safe_mode)
    config = recipe.config
    options = {
        "input_column": config.text_column if config.kind == "text" else config.image_column,
        "label_column": config.label_column,
        "encoding": config.encoding,
        "multi_label": config.multi_label,
    }
    examples = read_inputs(config.kind, inputs, options)
    examples.inputs = recipe.model_inputs(model, examples.inputs)
    rows, accuracy = predict_examples(model, examples, top_k, config.batch_size, progress and not config.quiet)
    write_predictions(rows, output)
    return rows, accuracy


REPRESENTATIVE_EXAMPLES = 300


def export_run(run_dir, out, format="saved_model", quantize="auto", safe_mode=True):
    """What `tfxfer export` runs: a finished run's model at `out` as
    `format` (see `tfxfer.deploy.export`). LiteRT and ONNX files are
    verified on the run's test split; int8 is calibrated on a stratified,
    seeded `REPRESENTATIVE_EXAMPLES` of its training split, whose indices
    go to `RUN/representative.json`. Returns `(path, manifest or None)`."""
    if os.path.exists(out):
        raise FileExistsError(f"'{out}' already exists; remove it or choose another folder.")
    recipe, model, run, _ = load_run(run_dir, safe_mode)
    if format == "saved_model":
        deploy.resolve_quantize(format, quantize, model, None)
        return export_model(model, out), None
    data = recipe.load()
    representative = None
    if format == "litert" and quantize in ("auto", *deploy.INT8) and recipe.config.kind == "image":
        representative = _representative(recipe, model, data, run)
    check = (recipe.model_inputs(model, data.x_test), data.y_test)
    path = deploy.export(model, out, format, quantize, representative_data=representative, check_data=check)
    with open(os.path.join(path, deploy.MANIFEST), encoding="utf-8") as file:
        return path, json.load(file)


def _representative(recipe, model, data, run):
    """A stratified, seeded sample of the training split to calibrate int8 on, recorded in the run folder."""
    indices = np.arange(len(data.y_train))
    if len(indices) > REPRESENTATIVE_EXAMPLES:
        indices = stratified_split(indices, data.y_train, REPRESENTATIVE_EXAMPLES / len(indices), recipe.config.seed)[
            1
        ][0]
    indices = np.sort(indices)
    record = {"split": "train", "seed": recipe.config.seed, "examples": len(indices), "indices": indices.tolist()}
    write_json(run.file("representative.json"), record)
    return recipe.model_inputs(model, data.x_train[indices])


def rank_image_sources(names, recipe, examples=1000, seed=0):
    """`rank_sources` of the image sources `names` on `recipe`'s training
    images (a stratified `examples` of them, each source given them at its
    size and channels): the rows, best LogME first."""
    data = recipe.load()
    x, y = data.x_train, data.y_train
    if len(y) > examples:
        _, (x, y) = stratified_split(x, y, examples / len(y), seed)
    features = {}
    for name in names:
        model = ImageClassifier.from_preset(name, len(data.class_names), input_size=recipe.config.input_size)
        features[name] = np.asarray(source_features(model, recipe.model_inputs(model, x), y, progress=False))
    return rank_sources(features, x, y, seed=seed)


def source_rows():
    """`(name, kind, description, location)` of every source `tfxfer sources` lists."""
    rows = []
    for preset in presets():
        aliases = f" (alias {', '.join(preset.aliases)})" if preset.aliases else ""
        rows.append((preset.name, preset.kind, preset.description + aliases, preset.location))
    rows += [(f"tfhub: {name}", "", f"cached: {folder}", None) for name, folder in hub_cache_modules()]
    rows += [(f"kerashub: {name}", kind, description, location) for name, kind, description, location in preset_rows()]
    rows += [(f"hf: {name}", "text", describe(folder), f"cached: {folder}") for name, folder in cached_encoders()]
    return rows


def rankable_image_presets():
    """The image presets with weights on this machine: what `--rank` scores by default."""
    return [p.name for p in presets("image") if p.available_offline and p.weights != "random"]
