"""End-to-end runs behind the `tfxfer` command: data by name or path, a
source by name, handle or path, the head trained on cached features, then
`fine_tune`, evaluation, plots and export, all into a `RunFolder`.

The same functions serve scripts and notebooks.
"""

import os
import time

import numpy as np


def image_model(source, num_classes, input_size=None, weights=None, dropout=0.2):
    """An `ImageClassifier` on `source`: a preset (`tfxfer.presets("image")`),
    a TF-Hub handle, or a SavedModel folder; `input_size` and `weights` (a
    local `.h5`) apply to Keras Applications presets."""
    from tfxfer.tasks.image_classifier import ImageClassifier

    return ImageClassifier.from_preset(source, num_classes, dropout=dropout, input_size=input_size, weights=weights)


def rank_image_sources(names, data, input_size=None, examples=1000, seed=0):
    """`rank_sources` of the image sources `names` on `data`'s training
    images (a stratified `examples` of them): the rows, best LogME first."""
    from tfxfer.data.datasets import stratified_split
    from tfxfer.methods.transferability import rank_sources
    from tfxfer.transfer.feature_cache import source_features

    x, y = data.x_train, data.y_train
    if len(y) > examples:
        _, (x, y) = stratified_split(x, y, examples / len(y), seed)
    features = {}
    for name in names:
        model = image_model(name, len(data.class_names), input_size=input_size)
        grey_to_colour = model.inputs[0].shape[-1] == 3 and x.shape[-1] == 1
        features[name] = np.asarray(
            source_features(model, np.repeat(x, 3, -1) if grey_to_colour else x, y, progress=False)
        )
    return rank_sources(features, x, y, seed=seed)


def text_model(source, texts, num_classes, encoder="hybrid", dropout=0.2, seed=0):
    """A `TextClassifier` on `source` (see `TextClassifier.from_preset`); the
    vocabulary of word vectors is adapted on `texts`, with `encoder`
    (`"hybrid"` or `"vectors"`, see `TextClassifier.from_word_vectors`; a
    TF-Hub module is its own encoder)."""
    from tfxfer.tasks.text_classifier import TextClassifier

    return TextClassifier.from_preset(source, num_classes, texts=texts, dropout=dropout, seed=seed, encoder=encoder)


def train_and_report(
    model,
    data,
    run,
    *,
    head_epochs,
    epochs,
    unfreeze,
    batch_size,
    learning_rate,
    train=None,
    unlabelled=None,
    validation_fraction=0.1,
    export=True,
    seed=0,
    verbose="auto",
):
    """Head on cached features, then `fine_tune`; test metrics, plots and
    export into `run` (a `RunFolder`). Rerunning resumes from `run.checkpoints`.

    Args:
        train: a function `(x, y) -> tf.data.Dataset` for fine-tuning (e.g.
            augmented images); by default the training arrays.
        unlabelled: inputs without labels: the head is then self-trained
            (`self_train`) last, on the features of the fine-tuned source
            (fine-tuned on the labelled examples), or of the frozen source
            where nothing is fine-tuned.
        epochs: of fine-tuning; `"auto"` sizes them to the data, and skips
            fine-tuning where `model.fine_tunes_by_default` is False (the
            hybrid text encoder).

    Returns:
        dict of the test figures (and `self_training`: its rounds).
    """
    from tfxfer.exporting import export as export_model
    from tfxfer.run_folder import write_atomically
    from tfxfer.transfer.feature_cache import fit_head
    from tfxfer.transfer.fine_tuning import fine_tune
    from tfxfer.transfer.self_training import self_train

    (x_train, y_train), validation = data.held_out(validation_fraction, seed)
    started = time.perf_counter()
    histories, self_training = {"head": None, "fine_tune": None}, None
    if epochs == "auto" and not model.fine_tunes_by_default:
        epochs = 0
        if verbose:
            print(
                f"fine-tuning skipped: {type(model).__name__}.fine_tunes_by_default is False for this source "
                "(pass --epochs N to fine-tune anyway)"
            )
    self_trains = bool(head_epochs) and unlabelled is not None and len(unlabelled) > 0
    # A head for fine-tuning to start from; with nothing to fine-tune, self_train trains its own.
    if head_epochs and (epochs or not self_trains):
        histories["head"] = fit_head(
            model,
            x_train,
            y_train,
            epochs=head_epochs,
            batch_size=batch_size,
            validation_data=validation,
            callbacks=[run.tensorboard("head")],
            verbose=verbose,
            progress=bool(verbose),
            solver="auto",
            refit=not epochs,  # a solved head with no fine-tuning after it may learn from the validation split too
        )
    if epochs:
        fit_data = (train(x_train, y_train),) if train else (x_train, y_train)
        histories["fine_tune"] = fine_tune(
            model,
            *fit_data,
            epochs=epochs,
            warmup_epochs=0,
            unfreeze=unfreeze,
            learning_rate=learning_rate,
            checkpoint_dir=run.checkpoints,
            validation_data=validation,
            verbose=verbose,
            batch_size=None if train else batch_size,
            callbacks=[run.tensorboard("fine_tune")],
        )["fine_tune"]
    if self_trains:
        # Last: the fine-tuned source labels the pool better than the frozen
        # one (CIFAR-10, 25 labels per class: 71.2 % test accuracy, against
        # 63.4 % when fine-tuning followed on the frozen source's pseudo-labels,
        # in a quarter of the time).
        result = self_train(
            model,
            x_train,
            y_train,
            unlabelled,
            validation,
            batch_size=batch_size,
            seed=seed,
            progress=bool(verbose),
            verbose=verbose,
        )
        self_training = {"best_round": result.best_round, "rounds": result.history}
    if not model.compiled:
        model.compile()
    results = evaluate_model(model, data, run, batch_size)
    results["train_seconds"] = round(time.perf_counter() - started, 1)
    if self_training:
        results["self_training"] = self_training
    run.write_metrics(histories, results)
    run.write_plots(histories, data.y_test, np.asarray(results.pop("predictions")), data.class_names, title="test")
    write_atomically(run.model, model.save)
    if export:
        run.replace_export(lambda folder: export_model(model, folder))
    return results


def evaluate_model(model, data, run=None, batch_size=64):
    """Test loss, accuracy, per-class accuracy and predictions of `model` on `data`."""
    loss, accuracy = model.evaluate(data.x_test, data.y_test, batch_size=batch_size, verbose=0)[:2]
    predictions = np.argmax(model.predict(data.x_test, batch_size=batch_size, verbose=0), axis=-1)
    per_class = {
        name: float(np.mean(predictions[data.y_test == c] == c)) if np.any(data.y_test == c) else None
        for c, name in enumerate(data.class_names)
    }
    return {
        "test_loss": float(loss),
        "test_accuracy": float(accuracy),
        "test_examples": int(len(data.y_test)),
        "per_class_accuracy": per_class,
        "predictions": predictions.tolist(),
    }


def load_run_model(run, safe_mode=True):
    """The model a run saved, loaded in Keras' safe mode unless told otherwise."""
    import keras

    import tfxfer  # noqa: F401  (registers tfxfer's layers for loading)

    if not os.path.isfile(run.model):
        raise FileNotFoundError(f"No model.keras in '{run.path}': did `tfxfer fit` finish there?")
    try:
        return keras.saving.load_model(run.model, safe_mode=safe_mode)
    except ValueError as error:
        if safe_mode and "safe_mode" in str(error):
            reason = " ".join(str(error).split()).split(". ")[0].rstrip(".") + "."  # Keras' first sentence names it
            raise ValueError(
                f"Keras' safe mode refuses part of '{run.model}': {reason} Loading it anyway runs that "
                "code: only if you trust the file, pass --no-safe-mode (tfxfer evaluate/export) or safe_mode=False."
            ) from error
        raise
