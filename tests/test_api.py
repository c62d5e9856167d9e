"""One public surface: what README, docs and notebooks use comes from `tfxfer`
or a documented subpackage, every public module declares `__all__`, and no
function hides the module of the same name."""

import importlib
import inspect
import json
import pathlib
import pkgutil
import re
import types

import pytest

import tfxfer

ROOT = pathlib.Path(__file__).resolve().parents[1]
PUBLIC_MODULES = (
    "tfxfer",
    "tfxfer.data",
    "tfxfer.deploy",
    "tfxfer.methods",
    "tfxfer.transfer",
    "tfxfer.distribute",
    "tfxfer.plots",
    "tfxfer.log",
    "tfxfer.sources",
)


def _code_of(path):
    """The code a reader copies: python blocks and inline code of markdown, code cells of notebooks."""
    text = path.read_text()
    if path.suffix == ".py":  # a benchmark: all of it
        return [text]
    if path.suffix == ".ipynb":
        cells = json.loads(text)["cells"]
        return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    blocks = re.findall(r"```(?:python|bash)?\n(.*?)```", text, flags=re.S)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    return blocks + re.findall(r"`([^`\n]+)`", prose)


def _documents():
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "notebooks").glob("*.ipynb")),
        *sorted((ROOT / "benchmarks").glob("*.py")),
    ]


def _check_dotted(dotted):
    """`tfxfer.a.b...`: each step into a module must be a public module's `__all__` name."""
    parts = dotted.split(".")
    current, path = tfxfer, "tfxfer"
    for part in parts[1:]:
        if not isinstance(current, types.ModuleType):
            return None  # a class or function: its attributes are its own business
        if path not in PUBLIC_MODULES:
            return f"{dotted}: {path} is not a public module (public: {', '.join(PUBLIC_MODULES)})"
        if part not in current.__all__:
            return f"{dotted}: {part!r} is not in {path}.__all__"
        current, path = getattr(current, part), f"{path}.{part}"
    if isinstance(current, types.ModuleType) and path not in PUBLIC_MODULES:
        return f"{dotted}: {path} is not a public module"
    return None


def _problems(code):
    problems = []
    for line in code.splitlines():
        if re.match(r"\s*(python|\$)?\s*-m tfxfer\.", line) or "python -m tfxfer" in line or '"-m", "tfxfer.' in line:
            continue  # rebuild commands name a module to run, not an API
        for module, names in re.findall(r"from (tfxfer[\w.]*) import ([\w, ()]+)", line):
            for name in re.findall(r"\w+", names):
                problems.append(_check_dotted(f"{module}.{name}"))
        for module in re.findall(r"^\s*import (tfxfer[\w.]*)", line):
            problems.append(_check_dotted(module))
        for dotted in re.findall(r"\btfxfer(?:\.[A-Za-z_]\w*)+", line):
            problems.append(_check_dotted(dotted))
    return [p for p in problems if p]


@pytest.mark.parametrize("document", _documents(), ids=lambda p: p.name)
def test_documents_use_only_the_public_api(document):
    problems = sorted({p for code in _code_of(document) for p in _problems(code)})
    assert not problems, f"{document.name} reaches past the public API:\n" + "\n".join(problems)


def test_the_checker_catches_deep_and_private_paths():
    assert _problems("from tfxfer.transfer.feature_cache import fit_head")
    assert _problems("tfxfer.sources.registry.presets()")
    assert _problems("from tfxfer._compat import check")
    assert not _problems("from tfxfer.data import load_cifar10\ntfxfer.ImageClassifier.from_preset('x', 2)")


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_modules_declare_all_and_export_what_they_list(name):
    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(set(module.__all__)), f"{name}.__all__ repeats a name"
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.__all__ lists {exported}, which it lacks"
        assert not exported.startswith("_")


def test_no_function_hides_its_module():
    hidden = []
    for info in pkgutil.walk_packages(tfxfer.__path__, "tfxfer."):
        parent_name, _, child = info.name.rpartition(".")
        parent = importlib.import_module(parent_name)
        attribute = getattr(parent, child, None)
        if attribute is not None and not inspect.ismodule(attribute):
            hidden.append(f"{parent_name}.{child} is a {type(attribute).__name__}, hiding module {info.name}")
    assert not hidden, "\n".join(hidden)


def test_methods_is_a_documented_attribute_of_tfxfer():
    assert tfxfer.methods.logme is importlib.import_module("tfxfer.methods").logme
    assert "methods" in tfxfer.__all__ and "data" in tfxfer.__all__


def test_docs_api_table_lists_each_public_module_exactly():
    rows = re.findall(r"^\| `(tfxfer[\w.]*)` \| (.*) \|$", (ROOT / "docs" / "api.md").read_text(), flags=re.M)
    assert {module for module, _ in rows} == set(PUBLIC_MODULES)
    for module, names in rows:
        listed = {name.rstrip("()") for name in re.findall(r"`([\w.()]+)`", names)}
        declared = set(importlib.import_module(module).__all__)
        if module == "tfxfer":
            listed |= {m.split(".")[1] for m in PUBLIC_MODULES if m != "tfxfer"}  # "the subpackages below"
        assert listed == declared, (module, sorted(listed ^ declared))
