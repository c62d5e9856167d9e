"""`HubFeatures`: a TF-Hub module or any TF2 SavedModel as a Keras 3 layer.

`tensorflow_hub.KerasLayer` belongs to Keras 2 and cannot sit in a Keras 3
model. This layer loads the SavedModel with `tf.saved_model.load` and tracks
the module's own variables as the layer's weights, so that `fit` trains
exactly the variables the module computes with.
"""

import hashlib
import importlib
import inspect
import os
import re

import keras
import tensorflow as tf

from tfxfer._compat import bind_variable, in_safe_mode
from tfxfer.choices import BN_POLICIES
from tfxfer.sources.embedded import embedded_source_path, verify_manifest
from tfxfer.validation import check_choice

_SAVED_MODEL_FILE = "saved_model.pb"


def is_remote_handle(handle):
    """True for handles that `tensorflow_hub` downloads (URLs, `gs://`)."""
    return "://" in handle


def resolve_handle(handle):
    """Returns the local SavedModel folder for a hub handle or a local path.

    Remote handles go through `tensorflow_hub`'s cache (`TFHUB_CACHE_DIR` is
    honoured). Raises a clear error when the module cannot be downloaded, or
    when the folder found has no `saved_model.pb` (a partial download or copy).
    """
    handle = os.fspath(handle)
    if is_remote_handle(handle):
        folder = _download(handle)
        origin = f"The cached folder '{folder}' for handle '{handle}'"
    else:
        folder = os.path.abspath(os.path.expanduser(handle))
        origin = f"The folder '{folder}'"
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"No SavedModel folder at '{handle}'. Pass the folder that "
                f"holds {_SAVED_MODEL_FILE} and variables/, or a TF-Hub "
                "handle such as 'https://tfhub.dev/...'."
            )
    if not tf.io.gfile.exists(os.path.join(folder, _SAVED_MODEL_FILE)):
        raise FileNotFoundError(_not_a_saved_model(folder, origin, remote=is_remote_handle(handle)))
    return folder


def _not_a_saved_model(folder, origin, remote):
    """Why `folder` (without saved_model.pb) is no module, and the fix for what it is."""
    if os.path.isfile(os.path.join(folder, "config.json")) and os.path.isfile(os.path.join(folder, "model.keras")):
        return (
            f"'{folder}' is a tfxfer run folder, not a SavedModel: its trained model is "
            f"'{os.path.join(folder, 'model.keras')}'. Test it with `tfxfer evaluate {folder}`, or "
            "build on it with keras.saving.load_model."
        )
    if remote:
        return (
            f"{origin} has no {_SAVED_MODEL_FILE}: an interrupted download. Delete that folder and load "
            f"again, or copy the complete module (with {_SAVED_MODEL_FILE} and variables/) into it."
        )
    return (
        f"{origin} has no {_SAVED_MODEL_FILE}, so it is no SavedModel (or a partial copy of one). Pass the "
        f"folder that holds {_SAVED_MODEL_FILE} and variables/."
    )


# Packages whose import registers ops that TF-Hub modules use: the
# tokenizers and normalizers of every BERT `*_preprocess` module.
OP_PACKAGES = {"tensorflow_text": "tensorflow-text"}
# Ops of other packages, by their name's start: what to install for them.
OP_PREFIXES = {
    "Addons>": "tensorflow-addons",
    "IO>": "tensorflow-io",
    "SimpleML": "tensorflow-decision-forests",
    "Scann": "scann",
}


def register_op_packages():
    """Imports the installed `OP_PACKAGES`, which registers their ops with
    TensorFlow; returns the names of those that are not installed."""
    missing = []
    for module, package in OP_PACKAGES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    return missing


def load_module(folder):
    """`tf.saved_model.load(folder)` with the op packages registered first,
    and a clear error naming the op and its package when one is missing."""
    missing_packages = register_op_packages()
    try:
        return tf.saved_model.load(folder)
    except RuntimeError as error:
        match = re.search(r"Op type not registered '([^']+)'", str(error))
        if match is None:
            raise
        raise RuntimeError(_missing_op_message(folder, match.group(1), missing_packages)) from None


def _missing_op_message(folder, op, missing_packages):
    package = next((name for prefix, name in OP_PREFIXES.items() if op.startswith(prefix)), None)
    if package is None and missing_packages:
        package = missing_packages[0]  # the op library a text module most likely needs
    start = f"The SavedModel '{folder}' uses the TensorFlow op '{op}', which is not registered"
    if package is None:
        return (
            f"{start} by TensorFlow {tf.__version__} nor by {', '.join(OP_PACKAGES.values())}. Install the "
            "package that defines it (the module's documentation names it) and import it before loading."
        )
    return (
        f"{start}: it comes from the package {package}, which is not installed. Install the release that "
        f"matches TensorFlow {tf.__version__} (pip install '{package}=={tf.__version__.rsplit('.', 1)[0]}.*') "
        "and load again."
    )


def hub_cache_folder(handle):
    """The folder where `tensorflow_hub` caches `handle`."""
    from tensorflow_hub import resolver

    cache_dir = resolver.tfhub_cache_dir(use_temp=True)
    return os.path.join(cache_dir, hashlib.sha1(handle.encode("utf8")).hexdigest())


def _download(handle):
    # tensorflow_hub pulls in tf_keras: import it only for remote handles.
    import tensorflow_hub as hub

    try:
        return hub.resolve(handle)
    except Exception as error:  # urllib, OSError, tarfile and hub errors alike
        raise ConnectionError(
            f"Could not fetch the TF-Hub module '{handle}' "
            f"({type(error).__name__}: {error}). Without network, download it "
            "on another machine, extract it into "
            f"'{hub_cache_folder(handle)}' (set TFHUB_CACHE_DIR to choose the "
            "cache folder), or pass the local folder that holds "
            f"{_SAVED_MODEL_FILE}."
        ) from error


def _keras_view(variable):
    """A Keras weight that reads and writes `variable` itself, not a copy.

    The module's functions capture their own `tf.Variable`s; a Keras weight
    holding a copy would be trained while the module kept reading the
    original.
    """
    name = variable.name.split(":")[0].replace("/", "_")
    view = keras.Variable(
        initializer=variable,
        dtype=variable.dtype.name,
        trainable=variable.trainable,
        name=name,
    )
    return bind_variable(view, variable)


def _module_variables(module, functions):
    """The module's variables, trainable ones first, each once."""
    if hasattr(module, "variables"):
        candidates = list(module.variables)
    else:  # e.g. SavedModels written by `model.export()` or TF1 hub format
        candidates = [v for f in functions for v in f.variables]
    unique = {id(v): v for v in candidates}.values()
    return [v for v in unique if v.trainable] + [v for v in unique if not v.trainable]


@keras.saving.register_keras_serializable(package="tfxfer")
class HubFeatures(keras.layers.Layer):
    """A TF-Hub module or TF2 SavedModel as a Keras 3 layer.

    Args:
        handle: a TF-Hub handle (URL, downloaded into `tensorflow_hub`'s
            cache, `TFHUB_CACHE_DIR` honoured) or a local SavedModel folder.
        signature: name of a serving signature to call (e.g.
            `"serving_default"`). By default the module's `__call__` is used
            (the reusable SavedModel API of TF-Hub), or `"serving_default"`
            when the module has no `__call__`.
        output_key: the key to return when the module returns a dict;
            optional when the dict has one entry.
        arguments: extra keyword arguments for every call of the module.
        input_dtype: dtype the module's input is cast to; read from the
            module's input signature by default.
        trainable: `False` (default) freezes the module's variables and
            runs it in inference mode; `True` fine-tunes them and passes
            `training` through to modules whose `__call__` accepts it.
        bn: `"train"` (default) passes `training` through when trainable;
            `"frozen"` always runs the module in inference mode, so its
            BatchNorm keeps its moving statistics while its variables may
            still be fine-tuned (the `bn` switch of `tfxfer.fine_tune`).

    Example:

    >>> import keras, numpy as np, tfxfer
    >>> features = tfxfer.HubFeatures(tfxfer.preset_path("digits04_cnn"))
    >>> model = keras.Sequential([keras.Input((8, 8, 1)), features,
    ...                           keras.layers.Dense(5)])
    >>> model(np.zeros((2, 8, 8, 1))).shape
    TensorShape([2, 5])
    """

    def __init__(
        self,
        handle,
        signature=None,
        output_key=None,
        arguments=None,
        input_dtype=None,
        trainable=False,
        bn="train",
        **kwargs,
    ):
        super().__init__(trainable=trainable, **kwargs)
        check_choice("bn", bn, BN_POLICIES)
        self.bn = bn
        self.handle = os.fspath(handle)
        self.signature = signature
        self.output_key = output_key
        self.arguments = dict(arguments or {})
        self._module = load_module(resolve_handle(self.handle))
        self._function, self._signature_input = self._select_function()
        self._accepts_training = self._signature_input is None and _accepts(self._function, "training")
        spec = self._declared_spec()
        self.module_dtype = tf.as_dtype(input_dtype or (spec.dtype if spec else tf.float32))
        functions = getattr(self._function, "concrete_functions", [self._function])
        module_variables = _module_variables(self._module, functions)
        self.module_weights = [_keras_view(v) for v in module_variables]
        # The module's own names ("conv2d/kernel"), which `transfer_weights` matches by.
        self.variable_paths = [v.name.split(":")[0] for v in module_variables]
        for view in self.module_weights:
            # As Keras does for the weights of a frozen layer; `layer.trainable
            # = True` turns the module's trainable variables back on.
            view.trainable = view.trainable and trainable
        self.built = True

    def _select_function(self):
        """Returns the callable and, for a signature, its input's name."""
        module = self._module
        if self.signature is None and callable(module):
            return module.__call__, None
        name = self.signature or "serving_default"
        if name not in module.signatures:
            raise ValueError(
                f"The SavedModel '{self.handle}' has no signature {name!r} "
                f"(and no __call__). Pass signature= one of "
                f"{sorted(module.signatures)}."
            )
        function = module.signatures[name]
        inputs = function.structured_input_signature[1]
        free = [key for key in inputs if key not in self.arguments]
        if len(free) != 1:
            raise ValueError(
                f"Signature {name!r} of '{self.handle}' takes inputs "
                f"{sorted(inputs)}; HubFeatures feeds one tensor. Pass the "
                "others through arguments={...}."
            )
        return function, free[0]

    def _declared_spec(self):
        """The TensorSpec the module declares for its input, or None."""
        if self._signature_input is not None:
            return self._function.structured_input_signature[1][self._signature_input]
        for function in getattr(self._function, "concrete_functions", []):
            args = function.structured_input_signature[0]
            if args and isinstance(args[0], tf.TensorSpec):
                return args[0]
        return None

    @property
    def module_input_shape(self):
        """The input shape (without batch) the module declares, or None."""
        spec = self._declared_spec()
        return None if spec is None else tuple(spec.shape[1:])

    def call(self, inputs, training=False):
        if self.module_dtype == tf.string:
            inputs = tf.convert_to_tensor(inputs, tf.string)
        else:
            inputs = tf.cast(inputs, self.module_dtype)
        kwargs = dict(self.arguments)
        if self._signature_input is not None:
            outputs = self._function(**{self._signature_input: inputs}, **kwargs)
        else:
            if self._accepts_training:
                # A frozen module runs in inference mode: BatchNorm keeps its
                # moving statistics, dropout is off.
                kwargs["training"] = bool(training) and self.trainable and self.bn == "train"
            outputs = self._function(inputs, **kwargs)
        outputs = self._pick_output(outputs)
        if outputs.dtype.is_floating:
            outputs = tf.cast(outputs, self.compute_dtype)
        return outputs

    def _pick_output(self, outputs):
        if not isinstance(outputs, dict):
            return outputs
        if self.output_key is None and len(outputs) == 1:
            return next(iter(outputs.values()))
        if self.output_key not in outputs:
            raise ValueError(
                f"'{self.handle}' returns a dict with keys {sorted(outputs)}; "
                f"pass output_key= one of them. Received: "
                f"output_key={self.output_key!r}"
            )
        return outputs[self.output_key]

    def get_config(self):
        config = super().get_config()
        config.update(
            handle=self.handle,
            signature=self.signature,
            output_key=self.output_key,
            arguments=dict(self.arguments),
            input_dtype=self.module_dtype.name,
            bn=self.bn,
        )
        return config

    @classmethod
    def from_config(cls, config):
        if in_safe_mode() and not _is_shipped_source(config["handle"]):
            raise ValueError(
                f"This file contains a HubFeatures layer that loads the "
                f"SavedModel '{config['handle']}', whose graph runs as saved; "
                "Keras' safe mode refuses that. If you trust that module, "
                "load with keras.saving.load_model(path, safe_mode=False)."
            )
        return cls(**config)


def _is_shipped_source(handle):
    """Whether `handle` is the image source tfxfer ships (its own graph, its
    files checked against their manifest): safe mode may load it, so that a
    run on it evaluates and exports with the defaults."""
    if not isinstance(handle, str):
        return False
    try:
        # The path first: the manifest's hashes are read only for the shipped folder.
        shipped = embedded_source_path(verify=False)
        if os.path.realpath(handle) != os.path.realpath(shipped):
            return False
        verify_manifest(shipped)
    except (FileNotFoundError, ValueError):  # missing, or its files changed
        return False
    return True


def _accepts(function, argument):
    try:
        return argument in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
