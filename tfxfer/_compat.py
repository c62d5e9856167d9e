"""Every private name of TensorFlow, Keras and scikit-learn that tfxfer uses.

Each is needed because the public API has no equivalent (said beside it).
`PRIVATE_NAMES` lists them; `check()` raises naming the first one that moved,
and `tests/test_compat.py` calls it, so an upgrade that renames one fails
loudly in the tests instead of quietly inside a training run.
"""

import functools

import keras
import numpy as np
import tensorflow as tf

# "owner.attribute" -> why tfxfer needs it.
PRIVATE_NAMES = {
    "keras.src.saving.serialization_lib.in_safe_mode": "whether a .keras load runs in safe mode (no public getter)",
    "keras.Variable._value": "a Keras weight that is a TF-Hub module's own tf.Variable, not a copy",
    "keras.Model._maybe_symbolic_build": "build a model from one local batch under MultiWorkerMirroredStrategy",
    "keras.callbacks.BackupAndRestore._save_model": "only the chief writes backups",
    "keras.optimizers.Optimizer._get_variable_index": "the slot of a (possibly mirrored) variable in an update",
    "keras.optimizers.Optimizer._use_weight_decay": "honour exclude_from_weight_decay in per-group decay",
    "keras.optimizers.Optimizer._apply_weight_decay": "decay at each group's rate instead of the base rate",
    "keras.optimizers.Optimizer._learning_rate": "the schedule object behind learning_rate",
    "keras.src.backend.config.keras_home": "the folder Keras read KERAS_HOME into at import (tests)",
    "keras.src.legacy.saving.legacy_h5_format.save_weights_to_hdf5_group": (
        "write weights in the Keras 2 .h5 layout Keras Applications ships (tests)"
    ),
    "tf.__internal__.tracking.AutoTrackable": "a SavedModel root with assignable `variables`",
    "tensorflow.lite.tools.flatbuffer_utils.read_model_from_bytearray": (
        "edit a LiteRT file: TensorFlow's converter cannot keep chosen weights out of float16"
    ),
    "tensorflow.lite.tools.flatbuffer_utils.convert_object_to_bytearray": "write an edited LiteRT file",
    "tensorflow.lite.python.schema_py_generated.BufferT": "a new constant in an edited LiteRT file",
    "tensorflow.lite.python.schema_py_generated.BuiltinOperator": "the names of a LiteRT file's ops",
    "tensorflow.lite.python.schema_py_generated.TensorType": "the types of a LiteRT file's tensors",
    "sklearn.datasets._twenty_newsgroups.strip_newsgroup_header": "20 Newsgroups cleaning by scikit-learn's rules",
    "sklearn.datasets._twenty_newsgroups.strip_newsgroup_footer": "20 Newsgroups cleaning by scikit-learn's rules",
    "sklearn.datasets._twenty_newsgroups.strip_newsgroup_quoting": "20 Newsgroups cleaning by scikit-learn's rules",
}


def _resolve(dotted):
    import importlib

    parts = dotted.split(".")
    roots = {"keras": keras, "tf": tf}
    if parts[0] in roots:
        owner, rest = roots[parts[0]], parts[1:]
    else:
        owner, rest = importlib.import_module(parts[0]), parts[1:]
    for index, part in enumerate(rest):
        try:
            owner = getattr(owner, part)
        except AttributeError:
            module = ".".join(parts[: index + 2])
            owner = importlib.import_module(module)  # a private submodule not imported by its parent
    return owner


def check(names=None):
    """Raises `ImportError` naming the first private name that no longer exists."""
    for name in names or PRIVATE_NAMES:
        owner, _, attribute = name.rpartition(".")
        try:
            if attribute == "_value":  # an instance attribute: look on a real variable
                found = hasattr(keras.Variable(0.0), attribute)
            elif attribute == "_learning_rate":
                found = hasattr(keras.optimizers.SGD(0.1), attribute)
            else:
                found = hasattr(_resolve(owner), attribute)
        except (ImportError, AttributeError):
            found = False
        if not found:
            raise ImportError(
                f"tfxfer relies on the private name {name} ({PRIVATE_NAMES[name]}), which this version of "
                "its library no longer has. Install the versions setup.cfg pins, or update tfxfer/_compat.py."
            )


def in_safe_mode():
    """Whether Keras is loading a file in safe mode right now."""
    from keras.src.saving import serialization_lib

    return bool(serialization_lib.in_safe_mode())


def bind_variable(view, variable):
    """Makes the Keras variable `view` read and write the `tf.Variable` itself.

    The Keras TF backend keeps its `tf.Variable` in `_value`; a module's
    functions capture their own variables, so a copy would train unseen.
    """
    view._value = variable
    return view


def optimizer_variable_index(optimizer, variable):
    """The index of `variable` among the variables `optimizer` was built on."""
    return optimizer._get_variable_index(variable)


def optimizer_decays(optimizer, variable):
    """Whether `optimizer`'s weight decay applies to `variable`."""
    return optimizer._use_weight_decay(variable)


def optimizer_schedule(optimizer):
    """The learning-rate schedule (or value) `optimizer` was built with."""
    return optimizer._learning_rate


class PerGroupWeightDecay:
    """Optimizer mixin: Keras' own decay step is skipped, since the subclass
    decays each variable at its own group's rate in `update_step`."""

    def _apply_weight_decay(self, variables):
        pass


class LocalBatchBuild:
    """Model mixin: Keras builds a model from its first batch before training.
    `symbolic_build_batch(iterator)`, defined by the subclass, may supply
    that batch (None: Keras reads the iterator as usual)."""

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and data_batch is None:
            data_batch = self.symbolic_build_batch(iterator)
            if data_batch is not None:
                iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)


class GuardedBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that writes only when `should_write()` says so."""

    def should_write(self):
        return True

    def _save_model(self):
        if self.should_write():
            super()._save_model()


SavedModelRoot = tf.__internal__.tracking.AutoTrackable


def newsgroup_strippers():
    """scikit-learn's header, footer and quote strippers, in its order."""
    from sklearn.datasets import _twenty_newsgroups as sklearn_20news

    return (
        ("headers", sklearn_20news.strip_newsgroup_header),
        ("footers", sklearn_20news.strip_newsgroup_footer),
        ("quotes", sklearn_20news.strip_newsgroup_quoting),
    )


def keras_home():
    """The Keras home folder as Keras itself resolved it at import."""
    from keras.src.backend.config import keras_home as home

    return home()


def write_legacy_h5_weights(model, path):
    """Writes `model`'s weights in the Keras 2 `.h5` layout (that of the
    Keras Applications `..._no_top.h5` files), which Keras 3 reads but no
    longer writes through a public call."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)
    return path


def read_litert(flatbuffer):
    """A LiteRT file's bytes as TensorFlow's mutable object form of its
    schema (`subgraphs`, `operators`, `tensors`, `buffers`)."""
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))


def write_litert(model):
    """The bytes of a LiteRT file read (and edited) with `read_litert`."""
    from tensorflow.lite.tools import flatbuffer_utils

    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def litert_op_name(model, operator):
    """The builtin name of `operator` ("CONV_2D", "DEQUANTIZE") in a `read_litert` model."""
    code = model.operatorCodes[operator.opcodeIndex]
    return _litert_op_names()[max(code.builtinCode, code.deprecatedBuiltinCode)]  # small codes: deprecated field


@functools.cache
def _litert_op_names():
    from tensorflow.lite.python import schema_py_generated as schema

    return {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def litert_tensor_type(name):
    """The schema's number for a tensor type ("FLOAT16", "FLOAT32")."""
    from tensorflow.lite.python import schema_py_generated as schema

    return getattr(schema.TensorType, name)


def add_litert_buffer(model, data):
    """Appends a constant buffer holding `data` (bytes) to a `read_litert` model: its index."""
    from tensorflow.lite.python import schema_py_generated as schema

    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, dtype=np.uint8)
    model.buffers.append(buffer)
    return len(model.buffers) - 1
