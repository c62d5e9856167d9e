"""Where and in what precision training runs, on TensorFlow's own engine.

`strategy("auto")` picks the `tf.distribute` strategy the machine calls for;
`set_precision(...)` sets the Keras dtype policy. Build the model inside
`strategy.scope()` (weights, and pretrained weights loaded into them, are
then mirrored), and pass the *global* batch size to `fit`: each of the
`strategy.num_replicas_in_sync` replicas gets an equal share.

Multi-worker: `"auto"` resolves to `MultiWorkerMirroredStrategy` from
`TF_CONFIG`. Keras 3's own `fit` fails under it (keras-team/keras#20585,
tensorflow/tensorflow#72388; seen with Keras 3.15 / TF 2.21): tfxfer's task
models carry `MultiWorkerFit`, which mends the two steps that fail, so
`fit`, `fine_tune` and `evaluate` run there. Only the chief (`is_chief()`)
writes checkpoints and exports; `checkpoint_dir` must be storage every
worker reads, as for TensorFlow's own multi-worker checkpoints.

Learning-rate rule: when the global batch grows k times (more replicas at
the same per-replica batch), scale the learning rate by k (linear scaling,
Goyal et al., 2017) and keep `fine_tune`'s warm-up, which is what makes
the larger rate safe; `scaled_learning_rate` does the arithmetic.
"""

import warnings

import tensorflow as tf

from tfxfer._compat import LocalBatchBuild
from tfxfer.choices import PRECISIONS, STRATEGIES
from tfxfer.settings import tf_config, tpu_attached
from tfxfer.validation import check_choice

__all__ = [
    "PRECISIONS",
    "STRATEGIES",
    "MultiWorkerFit",
    "in_multi_worker_mode",
    "is_chief",
    "resolve_name",
    "scaled_learning_rate",
    "set_precision",
    "strategy",
]


def _cluster():
    """TF_CONFIG as TensorFlow reads it: (jobs -> addresses, task type, task id); empty when unset."""
    if tf_config() is None:  # parsed here first: a broken value is named, not TensorFlow's JSON error
        return {}, None, None
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return resolver.cluster_spec().as_dict(), resolver.task_type, resolver.task_id


def _workers_in_tf_config():
    jobs = _cluster()[0]
    return len(jobs.get("worker", [])) + len(jobs.get("chief", []))


def _tpu_resolver():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return resolver
    except (ValueError, RuntimeError, tf.errors.NotFoundError):
        return None


def resolve_name(name="auto"):
    """The strategy name `"auto"` stands for on this machine."""
    if name != "auto":
        return name
    if tpu_attached():
        return "tpu"
    if _workers_in_tf_config() > 1:
        return "multi_worker"
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return "mirrored"
    return "default"


def strategy(name="auto", devices=None):
    """A `tf.distribute.Strategy`.

    Args:
        name: `"auto"` (a TPU when attached, `MultiWorkerMirroredStrategy`
            when `TF_CONFIG` names several workers, `MirroredStrategy` for
            several GPUs, else the default one-device strategy), or one of
            `"default"`, `"one_device"`, `"mirrored"`, `"multi_worker"`,
            `"tpu"`.
        devices: device names for `"mirrored"` (e.g. `["/cpu:0", "/cpu:1"]`)
            or the one device for `"one_device"`; all GPUs (or the CPU) by default.
    """
    check_choice("name", name, STRATEGIES)
    name = resolve_name(name)
    if name == "tpu":
        resolver = _tpu_resolver()
        if resolver is None:
            raise ValueError("No TPU could be reached: set TPU_NAME, or use strategy('auto') on this machine.")
        return tf.distribute.TPUStrategy(resolver)
    if name == "multi_worker":
        if _workers_in_tf_config() < 1:
            raise ValueError(
                "multi_worker needs TF_CONFIG naming the cluster and this worker's task, e.g. "
                '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(
            devices or ("/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0")
        )
    return tf.distribute.get_strategy()


def scaled_learning_rate(learning_rate, strategy, reference_replicas=1):
    """The linear scaling rule: `learning_rate` tuned on `reference_replicas`
    replicas, scaled to `strategy.num_replicas_in_sync` at the same per-replica batch."""
    return learning_rate * strategy.num_replicas_in_sync / reference_replicas


def is_chief(strategy=None):
    """Whether this process should write checkpoints and exports: always on one
    machine; the chief (the "chief" task, else worker 0) in a multi-worker
    cluster. A strategy (given, or the one in scope) knows; outside any
    scope, TF_CONFIG is read the way TensorFlow's strategies read it."""
    if strategy is None and tf.distribute.has_strategy():
        strategy = tf.distribute.get_strategy()
    if strategy is not None:
        return bool(strategy.extended.should_checkpoint)
    jobs, task_type, task_id = _cluster()
    if task_type is None or _workers_in_tf_config() <= 1:
        return True
    return task_type == "chief" if "chief" in jobs else (task_type == "worker" and task_id == 0)


def in_multi_worker_mode(strategy):
    """Whether `strategy` reduces across several worker processes."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and _workers_in_tf_config() > 1


class MultiWorkerFit(LocalBatchBuild):
    """Mixin for `keras.Model` subclasses: `fit`/`evaluate` under
    `MultiWorkerMirroredStrategy`, which Keras 3 breaks in two places.

    1. Before the first step Keras averages a whole input batch across
       workers only to learn its shapes, a cross-worker reduction TensorFlow
       refuses in eager mode; the shapes of this worker's own batch are what
       is needed.
    2. Each step averages the per-replica logs with `axis=0`, which fails on
       scalars; logs are given that axis (the mean is the same).
    Elsewhere both methods defer to Keras unchanged.
    """

    def symbolic_build_batch(self, iterator):
        if not in_multi_worker_mode(self.distribute_strategy):
            return None
        local = self.distribute_strategy.experimental_local_results
        for _, _, batches in iterator:
            return tf.nest.map_structure(
                lambda v: local(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v, next(batches)
            )
        return None

    def _per_replica_logs(self, logs):
        if not in_multi_worker_mode(self.distribute_strategy):
            return logs
        return {name: tf.expand_dims(value, 0) for name, value in logs.items()}

    def train_step(self, data):
        return self._per_replica_logs(super().train_step(data))

    def test_step(self, data):
        return self._per_replica_logs(super().test_step(data))


def set_precision(precision="float32", jit_compile=None, strategy=None):
    """Sets the global Keras dtype policy; task heads keep float32 logits.

    `"mixed_float16"` is for GPUs (Keras' `fit` then scales the loss);
    `"mixed_bfloat16"` for CPUs, TPUs and recent GPUs. With `jit_compile`,
    warns about the combination known to fail: mixed float16 + XLA under
    `MirroredStrategy` on TF >= 2.19.
    """
    import keras

    check_choice("precision", precision, PRECISIONS)
    if precision == "mixed_float16" and not tf.config.list_logical_devices("GPU"):
        warnings.warn("mixed_float16 without a GPU runs slowly on CPU; use mixed_bfloat16 there.", stacklevel=2)
    if (
        jit_compile
        and precision == "mixed_float16"
        and isinstance(strategy, tf.distribute.MirroredStrategy)
        and tuple(int(p) for p in tf.__version__.split(".")[:2]) >= (2, 19)
    ):
        warnings.warn(
            "mixed_float16 + XLA (jit_compile=True) + MirroredStrategy is known to fail on "
            f"TensorFlow {tf.__version__}; use mixed_bfloat16, or jit_compile=False.",
            stacklevel=2,
        )
    keras.mixed_precision.set_dtype_policy(precision)
    return keras.mixed_precision.dtype_policy()
