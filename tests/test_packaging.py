"""tfxfer as users get it: a wheel built from this tree, installed into a fresh
virtual environment, used from a folder outside the repository."""

import configparser
import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile

import numpy as np
import pytest
import setuptools

from helpers import FIT_TEXT_DEFAULTS, ticket_rows, write_bert_folder, write_digit_pngs, write_tickets

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _listed_packages():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config["options"]["packages"].split()


def test_setup_cfg_lists_every_package():
    found = setuptools.find_packages(str(ROOT), include=["tfxfer", "tfxfer.*"])
    assert sorted(_listed_packages()) == sorted([*found, "tfxfer.models"])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel, built from a copy of the tree: setuptools builds in the
    source folder (build/, *.egg-info), which two test workers would share."""
    folder = tmp_path_factory.mktemp("wheel")
    skipped = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", "runs")
    source = shutil.copytree(ROOT, folder / "source", ignore=skipped)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(folder),
            str(source),
        ],
        check=True,
        capture_output=True,
        cwd=folder,
    )
    (path,) = folder.glob("tfxfer-*.whl")
    return path


def test_wheel_holds_the_shipped_sources_as_their_manifests_say(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path)
    for source in ("digits04_cnn", "wiki_news_w2v"):
        manifest = json.loads((tmp_path / "tfxfer" / "models" / source / "manifest.json").read_text())
        assert manifest["files"], source
        for name in manifest["files"]:
            assert f"tfxfer/models/{source}/{name}" in names, f"{source}/{name} is not in the wheel"
    from tfxfer.sources.embedded import verify_manifest

    verify_manifest(tmp_path / "tfxfer" / "models" / "digits04_cnn")  # sha256 of every file
    verify_manifest(tmp_path / "tfxfer" / "models" / "wiki_news_w2v")


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh venv with the wheel installed (no dependencies); the test
    environment's packages reach it through a .pth line, tfxfer itself not."""
    folder = tmp_path_factory.mktemp("venv")
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    pathlib.Path(site, "test_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    return folder


def _run(installed, *command, cwd, timeout=600, **extra_environment):
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TFXFER_MODELS")}
    environment.update(TF_CPP_MIN_LOG_LEVEL="3", **extra_environment)
    result = subprocess.run(
        [str(installed / "bin" / command[0]), *command[1:]],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_installed_tfxfer_is_the_wheel_and_finds_its_sources(installed, tmp_path):
    where = _run(
        installed,
        "python",
        "-c",
        "import tfxfer; print(tfxfer.__file__); "
        "print(tfxfer.preset_path('digits04_cnn')); print(tfxfer.preset_path('wiki_news_w2v'))",
        cwd=tmp_path,
    )
    module, image_source, text_source = where.split()
    for path in (module, image_source, text_source):
        assert path.startswith(str(installed)), f"{path} is not inside the fresh environment"
    listing = _run(installed, "tfxfer", "sources", cwd=tmp_path)
    assert f"shipped: {image_source}" in listing and f"shipped: {text_source}" in listing


@pytest.mark.slow
def test_installed_cli_runs_the_demo_and_fit_text_with_defaults(installed, tmp_path):
    tiny = "demo --seeds 1 --budgets 5 --epochs 2 --text-epochs 3".split()
    demo = _run(
        installed,
        "tfxfer",
        *tiny,
        "--plots",
        str(tmp_path / "plots"),
        cwd=tmp_path,
    )
    assert "fine-tuning" in demo and "vectors fine-tuned" in demo
    fitted = _run(installed, "tfxfer", *FIT_TEXT_DEFAULTS, "--run-dir", str(tmp_path / "run"), "--quiet", cwd=tmp_path)
    accuracy = float(fitted.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 60.0, fitted  # two classes: well above chance with the defaults
    assert (tmp_path / "run" / "export" / "saved_model.pb").exists()


@pytest.mark.slow
def test_text_notebook_runs_on_the_installed_form(installed, tmp_path):
    """The Colab cell installs this wheel's form (pip builds one from the
    repository): the notebook's code runs on it, outside the repository."""
    cells = json.loads((ROOT / "notebooks" / "text_20newsgroups.ipynb").read_text())["cells"]
    assert any('pip", "install"' in "".join(c["source"]) for c in cells), "the install cell changed"
    code = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    (tmp_path / "notebook.py").write_text(code)
    encoder = str(write_bert_folder(tmp_path / "encoder"))  # offline: a tiny BERT for KerasHub's preset
    settings = {"TFXFER_NOTEBOOK_SMALL": "1", "MPLBACKEND": "Agg", "TFXFER_NOTEBOOK_ENCODER": encoder}
    output = _run(installed, "python", "notebook.py", cwd=tmp_path, **settings)
    assert "test accuracy" in output and (tmp_path / "served" / "20news" / "saved_model.pb").exists()
    assert "sentence encoder + TF-IDF: test accuracy" in output


SERVED_NAMES = """
import json, sys, tensorflow as tf
import tensorflow_text  # the ops of KerasHub's tokenizers, as docs/kerashub.md tells a consumer of such an export
import numpy as np
from PIL import Image
rows = [json.loads(line) for line in open(sys.argv[3])]
if sys.argv[2] == "text":
    inputs = [row["text"] for row in rows]
else:  # the source takes grey 8x8 images
    inputs = np.stack([np.asarray(Image.open(row["input"]).convert("L"))[..., None] for row in rows])
served = tf.saved_model.load(sys.argv[1])
print(json.dumps([name.decode() for name in served.serve(tf.constant(inputs))["top_names"].numpy()[:, 0]]))
"""

# The LiteRT and ONNX exports, run with their runtimes alone (no tfxfer, no
# TensorFlow): the best class of each image, and the labels inside the file.
DEPLOYED_NAMES = """
import json, os, sys, zipfile
import numpy as np
from PIL import Image
folder, rows = sys.argv[1], [json.loads(line) for line in open(sys.argv[2])]
images = np.stack([np.asarray(Image.open(row["input"]).convert("L"))[..., None] for row in rows])
if os.path.exists(f"{folder}/model.tflite"):
    from ai_edge_litert.interpreter import Interpreter
    serve = Interpreter(model_path=f"{folder}/model.tflite").get_signature_runner("serve")
    names = serve(images=images)["top_names"][:, 0]
    labels = zipfile.ZipFile(f"{folder}/model.tflite").read("labels.txt").decode().split()
else:
    import onnx, onnxruntime
    names = onnxruntime.InferenceSession(f"{folder}/model.onnx").run(["top_names"], {"images": images})[0][:, 0]
    labels = json.loads({p.key: p.value for p in onnx.load(f"{folder}/model.onnx").metadata_props}["labels"])
print(json.dumps([[n.decode() if isinstance(n, bytes) else str(n) for n in names], labels]))
"""

USER_DATA = {  # form: (fit command, how the data is written)
    "text.csv": ("text", ".csv"),
    "text.tsv": ("text", ".tsv"),
    "text.jsonl": ("text", ".jsonl"),
    "text folder": ("text", "folder"),
    "text.csv, encoder folder": ("text", ".csv"),  # --source: a sentence-transformers folder on disk
    "image.csv": ("image", ".csv"),
    "image folder": ("image", "folder"),
}


def _user_data(tmp_path, form):
    """`(fit arguments, test data)` of a user's data in `form`, in `tmp_path`."""
    kind, how = USER_DATA[form]
    if kind == "text":
        suffix = "" if how == "folder" else how
        train = write_tickets(tmp_path / f"train{suffix}", ticket_rows(90), how)
        test = write_tickets(tmp_path / f"test{suffix}", ticket_rows(30, seed=1), how)
        source = ["--source", str(write_bert_folder(tmp_path / "encoder"))] if "encoder" in form else []
        return ["fit", "text", *source, "--data", train.name], test.name
    train = write_digit_pngs(tmp_path / "train", per_class=10)
    test = write_digit_pngs(tmp_path / "test", per_class=10, offset=10)
    if how == "folder":  # the same images as class folders
        for table in (train, test):
            for name, label in (line.split(",") for line in table.read_text().splitlines()[1:]):
                (table.parent / label).mkdir(exist_ok=True)
                (table.parent / name).rename(table.parent / label / pathlib.Path(name).name)
            table.unlink()
            (table.parent / "images").rmdir()
        train, test = train.parent, test.parent
    return ["fit", "image", "--source", "digits04_cnn", "--data", str(train)], str(test)


@pytest.mark.slow
@pytest.mark.parametrize("form", sorted(USER_DATA))
def test_installed_cli_fits_predicts_and_exports_user_data_with_defaults(installed, tmp_path, form):
    """A user's texts or photos in each form: `fit` with no tuning option,
    then `evaluate`, `predict` and `export`, from outside the repository;
    `predict` reports `evaluate`'s accuracy and the SavedModel's names."""
    fit, test = _user_data(tmp_path, form)
    _run(installed, "tfxfer", *fit, "--run-dir", "run", "--quiet", "--no-export", cwd=tmp_path)
    evaluated = _run(installed, "tfxfer", "evaluate", "run", "--data", test, cwd=tmp_path)
    accuracy = json.loads((tmp_path / "run" / "evaluation.json").read_text())["test_accuracy"]
    assert f"test accuracy {100 * accuracy:.2f}%" in evaluated
    predicted = _run(installed, "tfxfer", "predict", "run", test, "--output", "p.jsonl", cwd=tmp_path)
    assert f"accuracy {100 * accuracy:.2f}% on 30 labelled inputs" in predicted, (evaluated, predicted)
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert abs(np.mean([row["label"] == row["true_label"] for row in rows]) - accuracy) < 1e-6
    _run(installed, "tfxfer", "export", "run", "served", cwd=tmp_path)
    if USER_DATA[form][0] == "text":  # the texts themselves, in the predictions' order
        rows = [{**row, "text": _text_of(tmp_path, row["input"])} for row in rows]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    served = _run(installed, "python", "-c", SERVED_NAMES, "served", USER_DATA[form][0], "rows.jsonl", cwd=tmp_path)
    assert json.loads(served) == [row["label"] for row in rows], form
    assert (tmp_path / "served" / "labels.txt").read_text().split() == sorted({row["true_label"] for row in rows})
    if USER_DATA[form][0] == "image":  # the deploy formats at their defaults (LiteRT: int8), and float16
        for folder, least in (("litert", 0.9), ("float16", 0.95), ("onnx", 1.0)):
            options = ["--format", "onnx"] if folder == "onnx" else ["--format", "litert"]
            options += ["--quantize", "float16"] if folder == "float16" else []
            _run(installed, "tfxfer", "export", "run", folder, *options, cwd=tmp_path)
            names, labels = json.loads(
                _run(installed, "python", "-c", DEPLOYED_NAMES, folder, "rows.jsonl", cwd=tmp_path)
            )
            assert labels == sorted({row["true_label"] for row in rows}), folder
            agreement = np.mean([name == row["label"] for name, row in zip(names, rows, strict=True)])
            assert agreement >= least, (folder, agreement)


def _text_of(folder, name):
    """The text a prediction row names: `file:line` of a table, or a file's path."""
    if ":" in name and not (folder / name).exists():
        path, line = name.rsplit(":", 1)
        text = (folder / path).read_text().splitlines()[int(line) - 1]
        if path.endswith(".jsonl"):
            return json.loads(text)["text"]
        return text.split("\t" if path.endswith(".tsv") else ",")[0]
    return (folder / name).read_text()
