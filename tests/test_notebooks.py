"""The notebooks run top to bottom, offline, on their small settings
(TFXFER_NOTEBOOK_SMALL=1), each in a fresh kernel in a scratch folder."""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import write_bert_folder

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"


def _run(name, folder):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    os.environ["TFXFER_NOTEBOOK_SMALL"] = "1"  # read by the kernel, which inherits the environment
    try:
        NotebookClient(
            notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
        ).execute()
    finally:
        del os.environ["TFXFER_NOTEBOOK_SMALL"]
    return "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ), notebook


def _figures(notebook):
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))


@pytest.mark.slow
def test_image_notebook(tmp_path):
    text, notebook = _run("image_cifar10.ipynb", tmp_path)
    assert "small settings" in text and "test accuracy" in text
    assert (tmp_path / "served" / "cifar10" / "saved_model.pb").is_file()
    assert (tmp_path / "runs" / "notebook_cifar10" / "confusion.png").is_file()
    assert _figures(notebook) >= 3  # sample images, curves, confusion matrix


@pytest.mark.slow
def test_text_notebook(tmp_path, monkeypatch):
    # The sentence-encoder section reads a tiny random BERT folder offline (KerasHub's preset in Colab).
    monkeypatch.setenv("TFXFER_NOTEBOOK_ENCODER", str(write_bert_folder(tmp_path / "encoder")))
    text, notebook = _run("text_20newsgroups.ipynb", tmp_path)
    assert "words found" in text and "test accuracy" in text
    assert "HybridTextFeatures pooling: mean" in text and "sentence encoder + TF-IDF: test accuracy" in text
    assert (tmp_path / "served" / "20news" / "saved_model.pb").is_file()
    assert _figures(notebook) >= 2


@pytest.mark.slow
def test_domain_adaptation_notebook(tmp_path):
    text, notebook = _run("domain_adaptation.ipynb", tmp_path)
    for method in ("source only", "importance weights", "CORAL", "DANN"):
        assert f"{method:20} target accuracy" in text
    assert _figures(notebook) >= 1


def test_notebooks_open_in_colab_and_detect_the_gpu():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        source = "\n".join(cell.source for cell in notebook.cells)
        assert f"colab.research.google.com/github/tfxfer/tfxfer/blob/main/notebooks/{path.name}" in source
        assert 'pip", "install"' in source and 'list_physical_devices("GPU")' in source
        assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # stored clean
