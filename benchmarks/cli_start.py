"""How fast the `tfxfer` command answers before any work: `--help` and
`--version` beside a bare `python -c pass` and `python -c "import
tensorflow"` (what every command paid before the CLI stopped importing
TensorFlow up front), medians of repeated runs, measured side by side.

    python benchmarks/cli_start.py [--repeats 5]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time


def median_seconds(command, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tfxfer = shutil.which("tfxfer", path=os.path.dirname(sys.executable)) or shutil.which("tfxfer")
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("tfxfer --version", [tfxfer, "--version"]),
        ("tfxfer --help", [tfxfer, "--help"]),
        ("tfxfer fit image --help", [tfxfer, "fit", "image", "--help"]),
        ('python -c "import tensorflow"', [sys.executable, "-c", "import tensorflow"]),
    ]
    baseline = None
    print(f"{'command':32} {'median s':>9} {'x python':>9}")
    for name, command in rows:
        seconds = median_seconds(command, args.repeats)
        baseline = baseline or seconds
        print(f"{name:32} {seconds:9.3f} {seconds / baseline:9.1f}")


if __name__ == "__main__":
    main()
