"""The README's example runs as written and builds what it says."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_builds_both_models():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    namespace = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    assert namespace["digits"].output_shape == (None, 5)
    assert namespace["photos"].output_shape == (None, 10)
    assert list(namespace["backbone"].block_groups)[-2:] == ["block_16", "top"]


def test_readme_gives_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def test_readme_fine_tuning_recipe_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    namespace = {}
    exec(compile(blocks[1], str(README), "exec"), namespace)
    assert len(namespace["history"]["fine_tune"].history["loss"]) == 1
    assert [v.path for v in namespace["model"].backbone.trainable_weights][-1] == "Conv_1/kernel"
