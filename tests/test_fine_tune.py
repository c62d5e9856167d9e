"""Staged fine-tuning: which weights move, BatchNorm policy, resume."""

import keras
import numpy as np
import pytest

from tfxfer import HubFeatures, ImageBackbone, ImageClassifier, fine_tune
from tfxfer.transfer import fixmatch_fine_tune, group_rate_multipliers, unfreeze_top

from helpers import IMAGE_SHAPE

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 17, size=(24, *IMAGE_SHAPE)).astype("uint8")
LABELS = np.arange(24) % 3


def small_source(seed=0):
    """Two conv + BatchNorm blocks: four weighted layers, so four groups."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(IMAGE_SHAPE)
    x = keras.layers.Conv2D(4, 3, name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.Conv2D(4, 3, name="conv_b")(keras.layers.ReLU()(x))
    x = keras.layers.BatchNormalization(name="bn_b")(x)
    return keras.Model(inputs, x, name="small_source")


def _snapshot(source):
    return {f"{layer.name}/{v.name}": np.array(v) for layer in source.layers for v in layer.weights}


def _changed(before, after):
    return {name for name in before if not np.allclose(before[name], after[name])}


@pytest.mark.parametrize("bn", ["frozen", "train"])
def test_only_the_top_groups_move_and_bn_follows_the_switch(bn):
    source = small_source()
    model = ImageClassifier(source, num_classes=3, dropout=0.0)
    before = _snapshot(source)
    fine_tune(model, IMAGES, LABELS, epochs=3, warmup_epochs=1, unfreeze=2, bn=bn, verbose=0, batch_size=8)
    changed = _changed(before, _snapshot(source))
    if bn == "frozen":  # conv_b trains; bn_b keeps statistics, scale and offset
        assert changed == {"conv_b/kernel", "conv_b/bias"}
    else:  # bn_b trains and updates its moving statistics
        assert changed == {
            "conv_b/kernel",
            "conv_b/bias",
            "bn_b/gamma",
            "bn_b/beta",
            "bn_b/moving_mean",
            "bn_b/moving_variance",
        }


@pytest.mark.parametrize("bn, statistics_move", [("frozen", False), ("train", True)])
def test_bn_switch_behaves_the_same_for_a_hub_module(hub_module, bn, statistics_move):
    source = HubFeatures(hub_module)
    model = ImageClassifier(source, num_classes=3, dropout=0.0)
    before = {v.name: np.array(v) for v in source._module.variables}
    fine_tune(model, IMAGES, LABELS, epochs=2, warmup_epochs=1, bn=bn, verbose=0, batch_size=8)
    changed = {
        name
        for name, value in before.items()
        if not np.allclose(value, [v for v in source._module.variables if v.name == name][0])
    }
    assert any("kernel" in name for name in changed)  # the module is fine-tuned either way
    assert any("moving_mean" in name for name in changed) == statistics_move


def test_warmup_trains_the_head_with_the_source_frozen():
    source = small_source()
    model = ImageClassifier(source, num_classes=3, dropout=0.0)
    before, head = _snapshot(source), np.array(model.head.kernel)
    fine_tune(model, IMAGES, LABELS, epochs=0, warmup_epochs=2, verbose=0, batch_size=8)
    assert _changed(before, _snapshot(source)) == set()
    assert not np.allclose(head, model.head.kernel)


def test_unfreeze_top_validates_and_reports_groups():
    source = small_source()
    assert unfreeze_top(source, 1) == ["bn_b"]
    assert unfreeze_top(source, "all", bn="train") == ["conv_a", "bn_a", "conv_b", "bn_b"]
    assert len(source.trainable_weights) == 8
    assert unfreeze_top(source, 0) == [] and source.trainable_weights == []
    with pytest.raises(ValueError, match=r"from 0 .*conv_a.*Received: num_groups=-1"):
        unfreeze_top(source, -1)


def test_more_groups_than_the_source_has_means_all_with_a_notice(caplog):
    source = small_source()
    with caplog.at_level("WARNING", logger="tfxfer"):
        assert unfreeze_top(source, 5) == ["conv_a", "bn_a", "conv_b", "bn_b"]
    (notice,) = caplog.messages
    assert notice == "unfreeze=5: the source has 4 block group(s) (conv_a, bn_a, conv_b, bn_b); unfreezing all 4."


def test_backbone_groups_get_discriminative_rates():
    backbone = ImageBackbone("mobilenet_v2", weights=None, input_size=32)
    groups = unfreeze_top(backbone, 2, bn="train")
    assert groups == ["block_16", "top"]
    rates = group_rate_multipliers(backbone, groups, source_rate=0.1, group_decay=0.5)
    assert rates["Conv_1/kernel"] == pytest.approx(0.1)
    assert rates["block_16_project/kernel"] == pytest.approx(0.05)
    assert set(rates) == {v.path for v in backbone.trainable_weights}


class _Interrupt(keras.callbacks.Callback):
    """Stops the process-like run after `stop_after` finished epochs of a stage."""

    def __init__(self, stop_after):
        super().__init__()
        self.stop_after = stop_after
        self.epochs_run = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_run += 1
        if self.epochs_run == self.stop_after:
            raise KeyboardInterrupt


class _Counter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_interrupted_run_resumes_from_the_last_epoch(tmp_path):
    settings = dict(epochs=4, warmup_epochs=1, unfreeze="all", bn="train", verbose=0, batch_size=8, shuffle=False)

    reference = ImageClassifier(small_source(), num_classes=3, dropout=0.0)
    fine_tune(reference, IMAGES, LABELS, **settings)

    interrupted = ImageClassifier(small_source(), num_classes=3, dropout=0.0)
    with pytest.raises(KeyboardInterrupt):  # warm-up (1 epoch) + 2 fine-tuning epochs, then killed
        fine_tune(interrupted, IMAGES, LABELS, checkpoint_dir=tmp_path, callbacks=[_Interrupt(3)], **settings)

    resumed = ImageClassifier(small_source(seed=1), num_classes=3, dropout=0.0)  # a fresh process
    counter = _Counter()
    histories = fine_tune(resumed, IMAGES, LABELS, checkpoint_dir=tmp_path, callbacks=[counter], **settings)
    assert histories["warmup"] is None  # finished before the interruption: skipped
    assert counter.epochs == [2, 3]  # only the epochs not finished yet
    for got, expected in zip(resumed.weights, reference.weights):
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=expected.path)


class _Poison(keras.callbacks.Callback):
    """Turns the head's kernel into NaN at the start of epoch `epoch`."""

    def __init__(self, epoch):
        super().__init__()
        self.at = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            kernel = self.model.get_layer("logits").kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_epoch(tmp_path):
    settings = dict(epochs=3, warmup_epochs=0, unfreeze="all", verbose=0, batch_size=8, shuffle=False)
    model = ImageClassifier(small_source(), num_classes=3, dropout=0.0)
    with pytest.raises(FloatingPointError, match=r"loss became nan in the fine_tune stage, epoch 2, batch 1.*kept in"):
        fine_tune(model, IMAGES, LABELS, checkpoint_dir=tmp_path, callbacks=[_Poison(1)], **settings)
    resumed = ImageClassifier(small_source(seed=1), num_classes=3, dropout=0.0)
    counter = _Counter()
    fine_tune(resumed, IMAGES, LABELS, checkpoint_dir=tmp_path, callbacks=[counter], **settings)
    assert counter.epochs == [1, 2]  # resumed after the last good epoch
    assert all(np.isfinite(np.asarray(w)).all() for w in resumed.weights)
    with pytest.raises(FloatingPointError, match="pass checkpoint_dir= to keep"):
        fine_tune(ImageClassifier(small_source(), num_classes=3), IMAGES, LABELS, callbacks=[_Poison(0)], **settings)


def test_fine_tune_takes_an_augmented_dataset():
    from tfxfer.data.pipelines import image_dataset

    data = image_dataset(IMAGES, LABELS, batch_size=8, shuffle=True, augment=True, pad=1)
    model = ImageClassifier(small_source(), num_classes=3)
    histories = fine_tune(model, data, epochs=2, warmup_epochs=1, verbose=0)
    assert len(histories["fine_tune"].history["loss"]) == 2
    assert int(model.optimizer.iterations) == 2 * 3  # 24 images / 8 per batch, 2 epochs


def test_dataset_of_unknown_length_needs_steps_per_epoch():
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((IMAGES, LABELS)).filter(lambda x, y: True).batch(8)
    model = ImageClassifier(small_source(), num_classes=3)
    with pytest.raises(ValueError, match="pass steps_per_epoch="):
        fine_tune(model, data, epochs=1, verbose=0)
    histories = fine_tune(model, data.repeat(), epochs=1, warmup_epochs=0, steps_per_epoch=3, verbose=0)
    assert int(model.optimizer.iterations) == 3 and histories["warmup"] is None


def test_the_schedule_spans_a_batched_dataset():
    """A Dataset's len() counts batches: the warm-up + cosine schedule must
    span epochs x batches (it once took them for examples and fell to 0 after
    the first steps)."""
    import tensorflow as tf

    class RecordRate(keras.callbacks.Callback):
        rates = []

        def on_train_batch_begin(self, batch, logs=None):
            self.rates.append(float(self.model.optimizer.learning_rate))

    data = tf.data.Dataset.from_tensor_slices((IMAGES, LABELS)).batch(2)  # 12 batches
    model = ImageClassifier(small_source(), num_classes=3)
    fine_tune(model, data, epochs=2, warmup_epochs=0, learning_rate=1e-2, callbacks=[RecordRate()], verbose=0)
    rates = RecordRate.rates
    assert len(rates) == 24
    assert max(rates) == pytest.approx(1e-2, rel=0.05)
    assert rates[12] == pytest.approx(0.5e-2, rel=0.2)  # the cosine's middle at the start of epoch 2
    assert rates[-1] < 1e-3


def _fine_tune_on_wrong_labels(model, validation_data):
    """5 epochs on shifted labels, which lower the validation accuracy: the
    fine-tuning stage's history."""
    return fine_tune(
        model,
        IMAGES,
        (LABELS + 1) % 3,
        epochs=5,
        warmup_epochs=0,
        learning_rate=3e-2,
        validation_data=validation_data,
        verbose=0,
        batch_size=8,
        patience=None,
    )["fine_tune"]


def test_a_stage_that_ends_below_its_start_on_validation_gives_the_start_back(caplog):
    """The head learns the labels; fine-tuning then trains on shuffled ones,
    which lowers the validation accuracy: the head's weights come back."""
    source = small_source()
    model = ImageClassifier(source, num_classes=3, dropout=0.0)
    fine_tune(model, IMAGES, LABELS, epochs=0, warmup_epochs=30, learning_rate=3e-2, verbose=0, batch_size=8)
    start = [np.array(w) for w in model.weights]
    start_accuracy = model.evaluate(IMAGES, LABELS, verbose=0, return_dict=True)["accuracy"]
    assert start_accuracy >= 0.5  # above chance (1/3)
    with caplog.at_level("WARNING", logger="tfxfer"):
        history = _fine_tune_on_wrong_labels(model, (IMAGES, LABELS))
    assert history.history["val_accuracy"][-1] < start_accuracy  # the stage itself did get worse
    for before, after in zip(start, model.weights):
        np.testing.assert_array_equal(before, np.array(after))
    assert any("ended below its start on validation" in m and "kept" in m for m in caplog.messages)


@pytest.mark.parametrize("copies, given_back", [(1, False), (100, True)])
def test_a_drop_within_the_noise_of_a_small_validation_split_keeps_the_stage(copies, given_back, caplog):
    """One validation image that the stage gets wrong: a drop from 1 to 0 on
    one example is within its noise (margin 1/sqrt(1)), so the stage keeps
    its weights; the same image 100 times (margin 0.1) gives the start back.
    Without the margin, 25 validation images gave back a fine-tuning of
    MobileNetV2 worth 12 test points on CIFAR-10."""
    model = ImageClassifier(small_source(), num_classes=3, dropout=0.0)
    fine_tune(model, IMAGES, LABELS, epochs=0, warmup_epochs=30, learning_rate=3e-2, verbose=0, batch_size=8)
    start = [np.array(w) for w in model.weights]
    right = int(np.flatnonzero(model.predict(IMAGES, verbose=0).argmax(1) == LABELS)[0])
    images, labels = np.repeat(IMAGES[right : right + 1], copies, 0), np.repeat(LABELS[right : right + 1], copies)
    with caplog.at_level("WARNING", logger="tfxfer"):
        history = _fine_tune_on_wrong_labels(model, (images, labels))
    assert history.history["val_accuracy"][-1] == 0.0  # the stage got the image wrong
    unchanged = all(np.array_equal(before, np.array(after)) for before, after in zip(start, model.weights))
    assert unchanged == given_back
    assert any("beyond the noise margin" in m for m in caplog.messages) == given_back


@pytest.mark.parametrize("threshold, mask_rate", [(0.0, 1.0), (0.999, 0.0)])
def test_fixmatch_masks_unconfident_unlabelled_images_and_trains_the_source(threshold, mask_rate):
    """With `unlabelled`, each step adds the weak view's confident classes as
    targets of the strong view: a threshold of 0 keeps every unlabelled
    image, one above a fresh 3-way head's confidence keeps none (and its
    loss is then 0); the source trains either way."""
    source = small_source()
    model = ImageClassifier(source, num_classes=3, dropout=0.0)
    before = _snapshot(source)
    history = fixmatch_fine_tune(
        model,
        IMAGES[:6],
        LABELS[:6],
        IMAGES[6:],
        threshold=threshold,
        unlabelled_ratio=3,
        epochs=2,
        warmup_epochs=0,
        batch_size=2,
        validation_data=(IMAGES[6:], LABELS[6:]),
        verbose=0,
    )["fine_tune"].history
    assert len(history["loss"]) == 2 and {"accuracy", "val_accuracy"} <= set(history)
    assert history["mask_rate"] == pytest.approx([mask_rate] * 2)
    assert (history["unlabelled_loss"][0] > 0) == (mask_rate > 0)
    assert {"conv_a/kernel", "conv_b/kernel"} <= _changed(before, _snapshot(source))
    assert model.predict(IMAGES[:2], verbose=0).shape == (2, 3)


def test_a_finished_stage_keeps_no_backup_and_a_damaged_end_marker_reruns_it(tmp_path, caplog):
    """The end marker is written whole before the backup goes; a marker
    damaged afterwards (a truncated copy) makes the stage run again, with a
    warning, instead of failing every rerun."""
    settings = dict(epochs=2, warmup_epochs=0, unfreeze="all", verbose=0, batch_size=8)
    fine_tune(ImageClassifier(small_source(), 3, dropout=0.0), IMAGES, LABELS, checkpoint_dir=tmp_path, **settings)
    done = tmp_path / "fine_tune" / "done.weights.h5"
    assert done.is_file() and not (tmp_path / "fine_tune" / "backup").exists()
    assert not [p for p in (tmp_path / "fine_tune").iterdir() if p.name.startswith(".partial")]
    done.write_bytes(done.read_bytes()[:100])
    counter = _Counter()
    model = ImageClassifier(small_source(seed=1), 3, dropout=0.0)
    with caplog.at_level("WARNING", logger="tfxfer"):
        fine_tune(model, IMAGES, LABELS, checkpoint_dir=tmp_path, callbacks=[counter], **settings)
    assert counter.epochs == [0, 1] and "is unreadable" in caplog.text
    model.load_weights(done)  # whole again
