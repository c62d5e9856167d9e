"""TF-Hub text modules that use TensorFlow Text ops (as every BERT
`*_preprocess` module does): `HubFeatures` registers the ops before loading,
names the op and its package when they are missing, and the module trains,
saves and exports raw-string serving like any source."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as text

import tfxfer
from tfxfer.sources.hub import _missing_op_message

TEXTS = np.array(["The rocket reached ORBIT", "god and faith", "a launch to orbit", "faith in God", ""], dtype=object)
LABELS = np.array([0, 1, 0, 1, 0])


class _TokenizingModule(tf.Module):
    """Case-folds and splits with TensorFlow Text, then averages a trainable embedding of known words."""

    def __init__(self):
        super().__init__()
        words = tf.constant(["the", "rocket", "orbit", "launch", "god", "faith"])
        ids = tf.range(1, 7, dtype=tf.int64)
        self.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(words, ids), 0)
        self.tokenizer = text.WhitespaceTokenizer()
        self.embedding = tf.Variable(tf.random.stateless_normal((7, 4), seed=(0, 1)), name="embedding")

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
    def __call__(self, texts):
        tokens = self.tokenizer.tokenize(text.case_fold_utf8(texts))
        ids = tf.ragged.map_flat_values(self.table.lookup, tokens)
        vectors = tf.ragged.map_flat_values(lambda rows: tf.gather(self.embedding, rows), ids)
        counts = tf.cast(ids.row_lengths(), tf.float32)[:, None]
        return tf.reduce_sum(vectors, axis=1) / tf.maximum(counts, 1.0)  # an empty text: zeros


@pytest.fixture(scope="module")
def text_module(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text_ops") / "module"
    module = _TokenizingModule()
    tf.saved_model.save(module, str(folder))
    return folder, module(tf.constant(TEXTS)).numpy()


FRESH_PROCESS = """
import json, sys
import numpy as np
sys.modules["tensorflow_text"] = None  # as if tensorflow-text were not installed
import tfxfer
try:
    tfxfer.HubFeatures(sys.argv[1])
    refused = ""
except RuntimeError as error:
    refused = str(error)
del sys.modules["tensorflow_text"]  # installed again: HubFeatures imports it itself
layer = tfxfer.HubFeatures(sys.argv[1])
texts = np.array(json.loads(sys.argv[2]), dtype=object)
print(json.dumps({"refused": refused, "features": np.asarray(layer(texts)).tolist()}))
"""


def test_a_fresh_process_loads_the_module_and_names_the_missing_package(text_module):
    folder, expected = text_module
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FRESH_PROCESS), str(folder), json.dumps(TEXTS.tolist())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "'CaseFoldUTF8'" in report["refused"] and "tensorflow-text" in report["refused"]
    assert "pip install 'tensorflow-text==" in report["refused"]
    np.testing.assert_allclose(report["features"], expected, atol=1e-6)


def test_ops_of_other_packages_are_named_with_what_to_do(tmp_path):
    message = _missing_op_message(str(tmp_path), "Addons>ImageProjectiveTransformV2", [])
    assert "'Addons>ImageProjectiveTransformV2'" in message and "tensorflow-addons" in message
    message = _missing_op_message(str(tmp_path), "SomeCustomOp", [])
    assert "'SomeCustomOp'" in message and "the module's documentation names it" in message


def test_a_text_ops_module_trains_saves_and_serves_raw_strings(text_module, tmp_path):
    folder, _ = text_module
    keras.utils.set_random_seed(0)
    model = tfxfer.TextClassifier.from_preset(str(folder), num_classes=2)
    embedding = model.backbone.module_weights[0]
    before = np.asarray(embedding)
    tfxfer.fit_head(model, TEXTS, LABELS, progress=False, verbose=0)
    np.testing.assert_array_equal(np.asarray(embedding), before)  # the head alone
    tfxfer.fine_tune(model, TEXTS, LABELS, epochs=3, warmup_epochs=0, verbose=0)
    assert not np.allclose(np.asarray(embedding), before)  # the module's own variable moved
    assert np.mean(model.predict(TEXTS, verbose=0).argmax(-1) == LABELS) == 1.0

    model.save(tmp_path / "text.keras")
    loaded = keras.saving.load_model(tmp_path / "text.keras", safe_mode=False)  # a SavedModel source
    np.testing.assert_allclose(loaded.predict(TEXTS, verbose=0), model.predict(TEXTS, verbose=0), atol=1e-5)

    tfxfer.export(model, tmp_path / "served")
    served = tf.saved_model.load(str(tmp_path / "served"))
    expected = keras.ops.softmax(model(tf.constant(TEXTS), training=False))
    np.testing.assert_allclose(
        served.serve(tf.constant(TEXTS))["probabilities"].numpy(), np.asarray(expected), atol=1e-5
    )
