"""The README's examples run as written (recipes on small local stand-ins)."""

import pathlib
import re

import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _block(containing):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return next(block for block in blocks if containing in block)


def _run(code):
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    return namespace


def _substitute(code, replacements):
    for old, new in replacements.items():
        assert old in code, f"the README recipe no longer contains {old!r}"
        code = code.replace(old, new)
    return code


def test_readme_example_builds_both_models():
    namespace = _run(_block("tfxfer.HubFeatures("))
    assert namespace["digits"].output_shape == (None, 5)
    assert namespace["photos"].output_shape == (None, 10)
    assert list(namespace["backbone"].block_groups)[-2:] == ["block_16", "top"]


def test_readme_gives_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def test_readme_fine_tuning_recipe_runs():
    namespace = _run(_block("mobilenet_v2/random"))
    assert len(namespace["history"]["fine_tune"].history["loss"]) == 1
    assert [v.path for v in namespace["model"].backbone.trainable_weights][-1] == "Conv_1/kernel"


def _recipe_lines(code):
    return [line for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.slow
def test_readme_cifar10_recipe_runs(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "c.npz",
        x_train=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
        y_train=np.arange(20) % 10,
        x_test=rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8),
        y_test=np.arange(10),
    )
    code = _block("load_cifar10()")
    assert len(_recipe_lines(code)) <= 15
    namespace = _run(
        _substitute(
            code,
            {
                "load_cifar10()": f"load_cifar10({str(tmp_path / 'c.npz')!r})",
                "mobilenet_v2/imagenet": "mobilenet_v2/random",
                "input_size=96": "input_size=32",
                "test_size=0.1": "test_size=0.5",
                "y_fit, validation_data": "y_fit, epochs=1, validation_data",
                "warmup_epochs=0,": "warmup_epochs=0, epochs=1,",
                '"runs/cifar10"': repr(str(tmp_path / "runs")),
                '"exported/cifar10"': repr(str(tmp_path / "exported")),
            },
        )
    )
    assert (tmp_path / "exported" / "saved_model.pb").exists()
    assert (tmp_path / "runs" / "fine_tune" / "done.weights.h5").exists()
    assert "Conv_1/kernel" in [v.path for v in namespace["model"].backbone.trainable_weights]


@pytest.mark.slow
def test_readme_20newsgroups_recipe_runs(tmp_path):
    import io
    import tarfile

    groups = ["comp.graphics", "sci.space"]
    with tarfile.open(tmp_path / "20news-bydate.tar.gz", "w:gz") as tar:
        for split in ("train", "test"):
            for g, group in enumerate(groups):
                for i in range(4):
                    data = f"From: a@b.c\nSubject: s\n\n{group} post {i} about {'pixels' if g else 'orbits'}\n".encode()
                    info = tarfile.TarInfo(f"20news-bydate-{split}/{group}/{100 + i}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    (tmp_path / "glove.txt").write_text("orbits 0.1 0.2 0.3\npixels -0.1 0.4 0.0\npost 0.0 0.0 0.1\n")
    code = _block("load_20newsgroups(")
    assert len(_recipe_lines(code)) <= 15
    archive = repr(str(tmp_path / "20news-bydate.tar.gz"))
    namespace = _run(
        _substitute(
            code,
            {
                'subset="train"': f'{archive}, subset="train"',
                'subset="test"': f'{archive}, subset="test"',
                '"glove.6B.100d.txt"': repr(str(tmp_path / "glove.txt")),
                "num_classes=20": "num_classes=2",
                "train.target)": "train.target, epochs=1, warmup_epochs=1)",
                '"exported/20news"': repr(str(tmp_path / "exported")),
            },
        )
    )
    assert len(namespace["train"].data) == 8
    assert (tmp_path / "exported" / "saved_model.pb").exists()
    assert namespace["model"].backbone.get_layer("word_embedding").trainable


def test_readme_csv_journey_prints_what_the_readme_shows(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tfxfer.cli import main

    monkeypatch.chdir(tmp_path)
    _run(_block('csv.writer(file).writerows([("text", "label"), *rows])'))
    console = re.search(r"```console\n(.*?)```", README.read_text(), flags=re.S).group(1)
    commands = [line[2:] for line in console.splitlines() if line.startswith("$ tfxfer ")]
    fit, evaluate, predict = (command.split()[1:] for command in commands[:3])
    for arguments in (fit, evaluate, predict):
        result = CliRunner().invoke(main, arguments)
        assert result.exit_code == 0, result.output
        for line in result.output.splitlines():
            if "accuracy" in line:  # the figures the README prints (paths aside)
                assert line.split(" on ")[0] in console, line
    shown = console.split("$ head -3 predictions.csv\n")[1].splitlines()[:3]
    assert (tmp_path / "predictions.csv").read_text().splitlines()[:3] == shown
