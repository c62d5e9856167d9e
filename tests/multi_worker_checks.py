"""One worker of a two-worker cluster on 127.0.0.1, run by test_distribute.py.

    python tests/multi_worker_checks.py OUT --index I --ports P0 P1 [--die-at EPOCH]
    python tests/multi_worker_checks.py OUT --single

Trains a small ImageClassifier with `fine_tune` under `strategy("auto")`
(MultiWorkerMirroredStrategy from TF_CONFIG; one device with --single),
checkpointing into OUT/shared/checkpoints and exporting to OUT/shared/export,
then writes OUT/worker-I.npz (final weights) and OUT/worker-I.json: what
the run saw and every file-system write it made under OUT/shared, recorded
by a Python audit hook (open for writing, mkdir, rename, remove, rmtree).
`--die-at EPOCH` ends the process abruptly in the middle of that epoch
(1-based) of the fine-tuning stage, as a killed machine would.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
WRITE_EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree"}


def writes_file(mode, flags):
    if mode:
        return bool(set(mode) & set("wax+"))
    return bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))


def record_writes(root, writes):
    def hook(event, args):
        if event == "open" and isinstance(args[0], str | bytes) and writes_file(*args[1:]):
            path = args[0]
        elif event in WRITE_EVENTS and args and isinstance(args[0], str | bytes):
            path = args[0]
        else:
            return
        path = os.fsdecode(path)
        if os.path.abspath(path).startswith(root):
            writes.append(f"{event} {os.path.relpath(path, root)}")

    sys.addaudithook(hook)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--ports", type=int, nargs=2)
    parser.add_argument("--single", action="store_true")
    parser.add_argument("--die-at", type=int)
    args = parser.parse_args()
    if not args.single:
        workers = [f"127.0.0.1:{port}" for port in args.ports]
        os.environ["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": args.index}}
        )
    shared = os.path.abspath(os.path.join(args.out, "shared"))
    writes = []
    record_writes(shared, writes)

    import keras
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tfxfer import ImageClassifier, distribute, export, fine_tune

    class DieMidEpoch(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch = None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1

        def on_train_batch_end(self, batch, logs=None):
            if self.params["epochs"] > 1 and self.epoch == args.die_at and batch == 1:
                os._exit(17)  # no cleanup, no flush: a machine lost

    strategy = distribute.strategy("auto")
    with strategy.scope():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.Conv2D(4, 3)(inputs)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = ImageClassifier(keras.Model(inputs, x), num_classes=3, dropout=0.0)
    rng = np.random.default_rng(0)
    images, labels = rng.normal(size=(64, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 64)
    histories = fine_tune(
        model,
        images,
        labels,
        epochs=3,
        warmup_epochs=1,
        learning_rate=0.05,
        batch_size=16,
        shuffle=False,
        checkpoint_dir=os.path.join(shared, "checkpoints"),
        verbose=0,
        callbacks=[DieMidEpoch()] if args.die_at else [],
    )
    exported = export(model, os.path.join(shared, "export"))
    np.savez(os.path.join(args.out, f"worker-{args.index}.npz"), *model.get_weights())
    report = {
        "strategy": type(strategy).__name__,
        "replicas": strategy.num_replicas_in_sync,
        "chief": distribute.is_chief(),
        "export_returned": exported,
        "epochs_run": {name: None if h is None else len(h.epoch) for name, h in histories.items()},
        "final_loss": float(histories["fine_tune"].history["loss"][-1]),
        "writes": writes,
    }
    with open(os.path.join(args.out, f"worker-{args.index}.json"), "w") as file:
        json.dump(report, file)


if __name__ == "__main__":
    main()
