"""Stages sized to the data: enough optimizer steps on few examples, early
stopping on many (issue: defaults that win)."""

import math

import keras
import numpy as np
import pytest

from tfxfer import HubFeatures, ImageClassifier, TextClassifier, fine_tune, fit_head
from tfxfer._compat import optimizer_schedule
from tfxfer.transfer.budget import DEFAULT_EPOCHS, MIN_STEPS, PATIENCE, repeat_small_data, stage_plan

from helpers import IMAGE_SHAPE


def test_few_steps_per_epoch_get_the_minimum_steps():
    plan = stage_plan("head", steps_per_epoch=3, epochs="auto")
    assert plan.epochs == 100 and plan.epochs * 3 >= MIN_STEPS
    assert "at least 300 steps" in plan.describe()
    assert plan.callbacks == []  # nothing to watch without validation data


def test_many_steps_per_epoch_keep_the_default_epochs_and_stop_by_validation():
    plan = stage_plan("fine_tune", steps_per_epoch=400, epochs="auto", validation=True)
    assert plan.epochs == DEFAULT_EPOCHS["fine_tune"]
    (stopper,) = plan.callbacks
    assert isinstance(stopper, keras.callbacks.EarlyStopping)
    assert stopper.patience == PATIENCE["fine_tune"] and stopper.restore_best_weights
    assert stopper.start_from_epoch == 1  # 300 steps are done after the first epoch


def test_no_early_stop_before_the_minimum_steps():
    # 20 steps an epoch: the minimum takes 15 epochs, so a noisy validation
    # split cannot stop the stage while its rate is still warming up.
    plan = stage_plan("head", steps_per_epoch=20, epochs="auto", validation=True)
    assert plan.epochs == 15 and plan.callbacks[0].start_from_epoch == 15
    assert "best weights kept" in plan.describe()


def test_epochs_given_are_run_as_asked():
    plan = stage_plan("head", steps_per_epoch=1, epochs=4, validation=True)
    assert plan.epochs == 4 and plan.callbacks == []  # no early stop unless asked: patience="auto" is off
    assert stage_plan("head", 1, epochs=4, validation=True, patience=1).callbacks
    with pytest.raises(ValueError, match="epochs must be 'auto' or a non-negative integer"):
        stage_plan("head", 1, epochs="many")


def _clustered(count, seed=0, classes=3):
    """Images whose brightness gives the class: easy for any source."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    images = rng.integers(0, 4, size=(count, *IMAGE_SHAPE)) + 5 * labels[:, None, None, None]
    return images.astype("uint8"), labels


def test_fit_head_on_few_examples_runs_the_minimum_steps(hub_module, tmp_path, capsys):
    images, labels = _clustered(20)
    model = ImageClassifier(HubFeatures(str(hub_module)), num_classes=3)
    history = fit_head(model, images, labels, batch_size=32, cache_dir=tmp_path, progress=False, verbose=2)
    # One 20-example batch, repeated 20 times an epoch (MIN_EPOCH_STEPS): 400 rows, 13 steps.
    assert len(history.epoch) == math.ceil(MIN_STEPS / 13) == 24
    assert MIN_STEPS <= int(model.optimizer.iterations) == 24 * 13 < MIN_STEPS + 13
    out = capsys.readouterr().out
    assert f"fit_head, head stage: 24 epochs of 13 steps (at least {MIN_STEPS} steps" in out
    assert "repeated 20 times an epoch" in out


def test_fit_head_on_many_examples_stops_when_validation_stalls(hub_module, tmp_path):
    images, labels = _clustered(12000)  # 375 steps an epoch: the minimum is one epoch
    held_out, held_labels = _clustered(120, seed=1)
    # Validation labels that contradict the training ones: the better the head
    # learns, the worse val_loss gets, so it peaks early and training stops.
    contradicting = (held_labels + 1) % 3
    model = ImageClassifier(HubFeatures(str(hub_module)), num_classes=3, dropout=0.0)
    history = fit_head(
        model,
        images,
        labels,
        batch_size=32,
        validation_data=(held_out, contradicting),
        cache_dir=tmp_path,
        progress=False,
        verbose=0,
    )
    ran, val_loss = len(history.epoch), history.history["val_loss"]
    assert ran < DEFAULT_EPOCHS["head"], val_loss
    best = 1 + int(np.argmin(val_loss[1:]))  # watched from the epoch where the minimum steps are done
    assert ran == best + 1 + PATIENCE["head"]
    # The best epoch's weights are the model's now, not the last epoch's.
    model.compile()
    restored = model.evaluate(held_out, contradicting, verbose=0, return_dict=True)["loss"]
    assert restored == pytest.approx(val_loss[best], abs=1e-4)


def test_fine_tune_auto_stages_run_min_steps_on_few_examples(hub_module):
    images, labels = _clustered(16)
    model = ImageClassifier(HubFeatures(str(hub_module), trainable=True), num_classes=3)
    histories = fine_tune(model, images, labels, batch_size=8, min_steps=30, verbose=0)
    # Two steps over the data, repeated 10 times an epoch: 20-step epochs. The
    # warm-up gets max(2 passes, 30 steps) = 2 epochs, fine-tuning max(5 passes, 30 steps) = 2.
    assert len(histories["warmup"].epoch) == 2 and len(histories["fine_tune"].epoch) == 2
    assert int(model.optimizer.iterations) == 40  # the fine-tuning stage's own optimizer


def test_many_passes_are_few_epochs_and_epochs_given_keep_their_meaning(hub_module):
    images, labels = _clustered(16)
    model = ImageClassifier(HubFeatures(str(hub_module)), num_classes=3)
    rows, _, _, passes = repeat_small_data(images, labels, None, batch_size=8)
    assert passes == 10 and len(rows) == 160
    np.testing.assert_array_equal(rows[16:32], images)
    history = fit_head(model, images, labels, epochs=3, batch_size=8, progress=False, verbose=0)
    assert len(history.epoch) == 3 and int(model.optimizer.iterations) == 6  # 3 passes as asked


def test_auto_rates_come_from_the_model(hub_module):
    texts = ["the rocket reached orbit", "god and faith", "a launch to orbit", "faith in god"] * 4
    labels = np.arange(16) % 2
    text = TextClassifier.from_preset("embedded", num_classes=2, texts=texts)
    assert text.fine_tuning_rates() == (1e-2, 1.0)  # word vectors: a lookup table, moved at the head's rate
    fine_tune(text, texts, labels, epochs=5, warmup_epochs=0, batch_size=8, verbose=0)
    schedule = optimizer_schedule(text.optimizer)
    assert max(float(schedule(step)) for step in range(10)) == pytest.approx(1e-2)  # the peak rate
    assert text.optimizer.rate_multipliers == {"word_embedding/embeddings": 1.0}
    image = ImageClassifier(HubFeatures(str(hub_module)), num_classes=3)
    assert image.fine_tuning_rates() == (1e-3, 0.1)
