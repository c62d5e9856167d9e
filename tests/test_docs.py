"""The hardening table names tests that exist."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_test_named_in_the_hardening_table_exists():
    table = (ROOT / "docs" / "hardening.md").read_text()
    named = 0
    for cell in re.findall(r"\| ([^|]*`test_[^|]*) \|$", table, flags=re.M):
        module = None
        for reference in re.findall(r"`([^`]+)`", cell):
            if "::" in reference:
                module, name = reference.split("::")
            else:
                name = reference  # same file as the reference before it
            assert f"def {name}(" in (ROOT / "tests" / module).read_text(), f"{module}::{name}"
            named += 1
    assert named >= 25
