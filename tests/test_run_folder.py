"""A run folder's identity, lock, whole-file writes and own-files-only removal."""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from tfxfer.cli import main
from tfxfer.files import write_atomically
from tfxfer.run_folder import RunFolder, RunFolderError

from helpers import FIT_TEXT_DEFAULTS

CONFIG = {"command": "fit text", "labels_per_class": None, "seed": 0, "quiet": False}


def test_other_settings_are_refused_by_name_and_overwrite_keeps_the_users_files(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.start(CONFIG)
    (tmp_path / "run" / "metrics.json").write_text("{}")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    run.start({**CONFIG, "quiet": True})  # not a setting of the result: the same run, resumed
    assert (tmp_path / "run" / "metrics.json").exists()
    with pytest.raises(RunFolderError, match=r"labels_per_class: None then, 10 now.*--overwrite"):
        run.start({**CONFIG, "labels_per_class": 10})
    assert run.read_config()["labels_per_class"] is None  # the refused run wrote nothing
    run.start({**CONFIG, "labels_per_class": 10}, overwrite=True)
    assert run.read_config()["labels_per_class"] == 10
    assert not (tmp_path / "run" / "metrics.json").exists()  # the old run's results are gone
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_a_live_lock_refuses_a_second_process_and_a_dead_ones_is_taken_over(tmp_path):
    run = RunFolder(tmp_path / "run")
    with run.lock():
        with pytest.raises(RunFolderError, match=f"in use by process {os.getpid()}"):
            with run.lock():
                pass
    assert not (tmp_path / "run" / ".run.lock").exists()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "run" / ".run.lock").write_text(finished.stdout.strip())  # its process has exited
    with run.lock():
        assert (tmp_path / "run" / ".run.lock").read_text() == str(os.getpid())


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"old": 1}')

    def fails_half_way(temporary):
        with open(temporary, "w") as file:
            file.write('{"new"')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(str(path), fails_half_way)
    assert json.loads(path.read_text()) == {"old": 1}
    assert os.listdir(tmp_path) == ["config.json"]  # no partial file left


def test_export_replaces_only_its_own_files(tmp_path):
    run = RunFolder(tmp_path / "run")

    def export(folder):
        os.makedirs(os.path.join(folder, "variables"))
        for name in ("saved_model.pb", os.path.join("variables", "variables.index")):
            with open(os.path.join(folder, name), "w") as file:
                file.write("x")

    run.replace_export(export)
    run.replace_export(export)  # its own files: replaced
    assert run.foreign_export_files() == []
    (tmp_path / "run" / "export" / "README.txt").write_text("mine")
    with pytest.raises(RunFolderError, match=r"README.txt.*--no-export"):
        run.check_export_free()
    with pytest.raises(RunFolderError, match="README.txt"):
        run.replace_export(export)
    assert (tmp_path / "run" / "export" / "README.txt").read_text() == "mine"


def test_the_cli_refuses_a_rerun_with_other_settings_before_any_work(tmp_path):
    run = tmp_path / "run"
    first = CliRunner().invoke(main, [*FIT_TEXT_DEFAULTS, "--run-dir", str(run), "--no-export", "--quiet"])
    assert first.exit_code == 0, first.output
    accuracy = json.loads((run / "metrics.json").read_text())["results"]["test_accuracy"]
    other = [*FIT_TEXT_DEFAULTS, "--run-dir", str(run), "--no-export", "--quiet", "--labels-per-class", "5"]
    refused = CliRunner().invoke(main, other)
    assert refused.exit_code == 1 and "labels_per_class: None then, 5 now" in refused.output
    assert "Traceback" not in refused.output and len(refused.output.strip().splitlines()) == 1
    assert json.loads((run / "metrics.json").read_text())["results"]["test_accuracy"] == accuracy
    started_over = CliRunner().invoke(main, [*other, "--overwrite"])
    assert started_over.exit_code == 0, started_over.output
    assert json.loads((run / "config.json").read_text())["labels_per_class"] == 5
    (run / "export").mkdir()
    (run / "export" / "keep.txt").write_text("mine")
    refused = CliRunner().invoke(main, [argument for argument in other if argument != "--no-export"])
    assert refused.exit_code == 1 and "keep.txt" in refused.output and "--no-export" in refused.output


def test_a_damaged_config_is_named_and_overwrite_starts_over(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.start(CONFIG)
    (tmp_path / "run" / "config.json").write_text('{"command": "fit te')  # cut by a kill before whole-file writes
    for action in (run.read_config, lambda: run.start(CONFIG)):
        with pytest.raises(RunFolderError, match=r"config.json' is damaged \(not JSON: .*--overwrite"):
            action()
    run.start(CONFIG, overwrite=True)
    assert run.read_config()["command"] == "fit text"


class _Killed(BaseException):
    """Stands for SIGKILL: nothing in tfxfer may catch it."""


@pytest.mark.slow
def test_a_run_killed_at_any_write_resumes_on_rerun(tmp_path, monkeypatch):
    """Kills `fit` just before each of its renames (the temporary file left
    behind, as a real kill leaves it), then reruns the same command: it
    finishes with the result of an uninterrupted run and leaves no debris."""
    arguments = [*FIT_TEXT_DEFAULTS, "--quiet"]
    whole = CliRunner().invoke(main, [*arguments, "--run-dir", str(tmp_path / "whole")], catch_exceptions=False)
    assert whole.exit_code == 0, whole.output
    expected = json.loads((tmp_path / "whole" / "metrics.json").read_text())["results"]["test_accuracy"]
    rename, renames = os.replace, []
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)

    def killed_at(count):
        def replace(source, target):
            if os.path.dirname(os.path.abspath(target)) != str(folder):  # inside the export's staging folder
                return rename(source, target)  # (discarded whole by a rerun: one kill point, the swap, covers it)
            renames.append(target)
            if len(renames) == count:
                rename(source, os.path.join(os.path.dirname(target), f".partial-{dead.stdout.strip()}-left"))
                raise _Killed
            return rename(source, target)

        return replace

    kill = 0
    while True:
        kill, renames[:] = kill + 1, []
        folder = tmp_path / f"killed{kill}"
        monkeypatch.setattr(os, "replace", killed_at(kill))
        try:
            finished = CliRunner().invoke(main, [*arguments, "--run-dir", str(folder)], catch_exceptions=False)
        except _Killed:
            (folder / ".run.lock").write_text(dead.stdout.strip())  # a killed process leaves its lock
        else:
            assert finished.exit_code == 0 and kill > 1
            break
        monkeypatch.setattr(os, "replace", rename)
        rerun = CliRunner().invoke(main, [*arguments, "--run-dir", str(folder)], catch_exceptions=False)
        assert rerun.exit_code == 0, f"killed at write {kill} ({renames[-1]}): {rerun.output}"
        assert json.loads((folder / "metrics.json").read_text())["results"]["test_accuracy"] == expected
        assert not list(folder.rglob(".partial-*")) and not (folder / ".run.lock").exists()
        exported = (folder / "export").rglob("*")
        manifest = json.loads((folder / "export.manifest.json").read_text())
        assert manifest == sorted(str(path.relative_to(folder / "export")) for path in exported if path.is_file())
    assert kill > 6  # config, metrics (2), model, export swap, its manifest (2): each write was killed once


def test_overwrite_removes_every_file_tfxfer_wrote_and_none_of_the_users_in_any_subfolder(tmp_path):
    run = tmp_path / "run"
    fit = [
        "fit",
        "image",
        "--source",
        "embedded",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--quiet",
        "--run-dir",
        str(run),
    ]
    assert CliRunner().invoke(main, fit).exit_code == 0
    written = {str(path.relative_to(run)) for path in run.rglob("*") if path.is_file()}
    assert {"plots/curves.png", "checkpoints/fine_tune/done.weights.h5", "export/saved_model.pb"} <= written
    assert any(name.startswith("logs/head/") and "tfevents" in name for name in written)
    mine = ["notes.txt", "plots/my_plot.png", "logs/my_notes.txt", "logs/head/mine.txt", "checkpoints/keep.h5"]
    for name in mine:
        (run / name).write_text("mine")
    result = CliRunner().invoke(main, [*fit, "--seed", "1", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert all((run / name).read_text() == "mine" for name in mine)
    old_events = {name for name in written if "tfevents" in name}
    assert not any((run / name).exists() for name in old_events)  # the earlier run's logs are gone
    assert json.loads((run / "config.json").read_text())["seed"] == 1
