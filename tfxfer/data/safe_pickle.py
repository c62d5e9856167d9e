"""Loading the pickles that datasets come in, without running their code.

A pickle can name any importable callable, and loading it calls it. These
loaders accept only the globals that a dataset's format needs (numpy arrays
and plain containers, a scikit-learn Bunch) and refuse everything else with
a message that names the file.
"""

import copyreg
import io
import pickle

# What a pickled numpy array needs, under the names numpy 1 and 2 write.
NUMPY_ARRAYS = {
    ("numpy.core.multiarray", "_reconstruct"): None,
    ("numpy._core.multiarray", "_reconstruct"): None,
    ("numpy.core.multiarray", "scalar"): None,
    ("numpy._core.multiarray", "scalar"): None,
    ("numpy", "ndarray"): None,
    ("numpy", "dtype"): None,
    ("_codecs", "encode"): None,  # how Python 3 writes bytes in a protocol-2 pickle
}


def _bunch():
    from sklearn.utils import Bunch

    return Bunch


# A scikit-learn Bunch under the module names it has had, as a plain dict subclass.
SKLEARN_BUNCH = {
    ("sklearn.utils._bunch", "Bunch"): _bunch,
    ("sklearn.utils", "Bunch"): _bunch,
    ("sklearn.datasets.base", "Bunch"): _bunch,
    ("sklearn.datasets._base", "Bunch"): _bunch,
    ("copy_reg", "_reconstructor"): lambda: copyreg._reconstructor,
    ("copyreg", "_reconstructor"): lambda: copyreg._reconstructor,
    ("__builtin__", "dict"): lambda: dict,
    ("builtins", "dict"): lambda: dict,
    ("__builtin__", "object"): lambda: object,
    ("builtins", "object"): lambda: object,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data, allowed, what, **kwargs):
        super().__init__(io.BytesIO(data), **kwargs)
        self.allowed, self.what, self.size = allowed, what, len(data)

    def find_class(self, module, name):
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: {self.what}")
        provide = self.allowed[module, name]
        found = provide() if provide else super().find_class(module, name)
        if name == "_reconstruct":
            return self._bounded_reconstruct(found)
        return _ARRAY_CLASS if name == "ndarray" else found

    def _bounded_reconstruct(self, reconstruct):
        """numpy's `_reconstruct(cls, shape, dtype)` allocates `shape`: a
        pickle carries its arrays' data, so an array with more elements
        than the pickle has bytes is refused before any allocation."""
        import numpy as np

        def bounded(cls, shape, dtype):
            elements = int(np.prod(shape, dtype=object))
            if elements > self.size:
                raise pickle.UnpicklingError(
                    f"an array of shape {tuple(shape)} in a {self.size:,}-byte pickle, which cannot hold its data: "
                    "the file is damaged or hostile"
                )
            return reconstruct(np.ndarray if cls is _ARRAY_CLASS else cls, shape, dtype)

        return bounded


class _ArrayClass:
    """Stands for `numpy.ndarray` in a pickle, where only `_reconstruct`
    may use it: called directly, `ndarray(shape)` would allocate `shape`."""

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError("a pickle that calls numpy.ndarray directly: refused, not a saved array")


_ARRAY_CLASS = _ArrayClass()


def restricted_loads(data, allowed, what, encoding="ASCII"):
    """Unpickles `data`, allowing only the `(module, name)` keys of `allowed`.

    `allowed` maps each to None (import it as named) or a function returning
    the object to use instead. `what` says what the file should hold, for
    the refusal message. Raises `pickle.UnpicklingError` on anything else,
    on an array declaring more elements than the pickle has bytes, and on
    a damaged size field that asks for more memory than there is.
    """
    try:
        return _RestrictedUnpickler(data, allowed, what, encoding=encoding).load()
    except (MemoryError, OverflowError) as error:
        raise pickle.UnpicklingError(
            f"a size in the {len(data)}-byte pickle asks for more memory than it can hold ({type(error).__name__}): "
            "the file is damaged"
        ) from error
