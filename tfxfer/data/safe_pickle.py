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
    def __init__(self, file, allowed, what, **kwargs):
        super().__init__(file, **kwargs)
        self.allowed, self.what = allowed, what

    def find_class(self, module, name):
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: {self.what}")
        provide = self.allowed[module, name]
        return provide() if provide else super().find_class(module, name)


def restricted_loads(data, allowed, what, encoding="ASCII"):
    """Unpickles `data`, allowing only the `(module, name)` keys of `allowed`.

    `allowed` maps each to None (import it as named) or a function returning
    the object to use instead. `what` says what the file should hold, for
    the refusal message. Raises `pickle.UnpicklingError` on anything else,
    and on a damaged size field that asks for more memory than there is.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), allowed, what, encoding=encoding).load()
    except (MemoryError, OverflowError) as error:
        raise pickle.UnpicklingError(
            f"a size in the {len(data)}-byte pickle asks for more memory than it can hold ({type(error).__name__}): "
            "the file is damaged"
        ) from error
