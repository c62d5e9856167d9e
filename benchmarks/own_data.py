"""A user's own data: 20 Newsgroups as a CSV, and a 1 GB CSV's memory.

Rows:

- `news`: the 20 Newsgroups bydate training split from ../shared/data,
  loaded from the archive (headers, footers and quotes removed, the
  defaults), then written as one CSV (`text,label`, the same posts in the
  same order) and loaded from it; the time and peak memory of each load
  (each in a fresh process: the peak resident memory during the load above
  the process's size before it, Linux's VmHWM after a reset),
  and `tfxfer fit text` with its defaults on each (`--data ARCHIVE` against
  `--data file.csv --remove ''`: the CSV holds the stripped posts), with
  their test accuracies side by side;
- `big`: a synthetic CSV of `--big-gib` GiB (about 1,000 characters per
  row, 20 labels), loaded with `load_text_data`: its time and peak memory,
  against the bound stated here, `MEMORY_BOUND` times the file's size.

    python benchmarks/own_data.py [--rows news,big] [--big-gib 1]
"""

import argparse
import csv
import os
import random
import re
import subprocess
import sys
import tempfile
import time

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
NEWS = os.path.join(SHARED, "20news", "20news-bydate-train.tar.gz")
MEMORY_BOUND = 1.5  # peak memory of a load, in multiples of the CSV's size

MEASURE = """
import sys, time
import tfxfer.data

def status(field):  # kB, from the kernel's account of this process
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field))

open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) restarts from the present size
before = status("VmRSS:")
started = time.perf_counter()
data = tfxfer.data.load_text_data(sys.argv[1], remove=tuple(p for p in sys.argv[2].split(",") if p))
seconds = time.perf_counter() - started
print(len(data.x_train) + len(data.x_test), seconds, (status("VmHWM:") - before) * 1024)
"""


def measure_load(path, remove="headers,footers,quotes"):
    """`(examples, seconds, peak bytes above the imports)` of loading `path` in a fresh process."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, path, remove], capture_output=True, text=True, check=True, env=environment
    ).stdout.split()
    return int(out[0]), float(out[1]), int(out[2])


def fit_accuracy(*arguments):
    """`tfxfer fit text` with its defaults in a fresh process: (test accuracy %, seconds)."""
    run_dir = tempfile.mkdtemp(prefix="tfxfer-own-data-")
    command = [sys.executable, "-m", "tfxfer.cli", "fit", "text", *arguments, "--run-dir", run_dir]
    started = time.perf_counter()
    out = subprocess.run([*command, "--quiet", "--no-export"], capture_output=True, text=True, check=True).stdout
    return float(re.search(r"test accuracy ([\d.]+)%", out).group(1)), time.perf_counter() - started


def news_row(folder):
    import tfxfer.data

    posts = tfxfer.data.load_20newsgroups(NEWS, "train", remove=("headers", "footers", "quotes"))
    path = os.path.join(folder, "20news.csv")
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows((text, posts.target_names[t]) for text, t in zip(posts.data, posts.target))
    size = os.path.getsize(path)
    print(f"20 Newsgroups train split: {len(posts.data)} posts; as CSV {size / 2**20:.1f} MiB")
    print(f"{'load':28} {'examples':>9} {'seconds':>8} {'peak MiB':>9}")
    loads = (("archive (tar.gz)", NEWS, "headers,footers,quotes"), ("CSV (--data file.csv)", path, ""))
    for name, source, remove in loads:
        count, seconds, peak = measure_load(source, remove)
        print(f"{name:28} {count:9d} {seconds:8.1f} {peak / 2**20:9.1f}")
    archive, archive_s = fit_accuracy("--source", "embedded", "--data", NEWS)
    table, table_s = fit_accuracy("--source", "embedded", "--data", path, "--remove", "")
    print("tfxfer fit text, defaults (one seed, the CLI's stratified 20% test split):")
    print(f"  --data 20news-bydate-train.tar.gz   test accuracy {archive:.2f}%  ({archive_s:.0f} s)")
    print(f"  --data 20news.csv                   test accuracy {table:.2f}%  ({table_s:.0f} s)")
    print(f"  difference {abs(archive - table):.2f} points (target: within 0.3)")


def big_row(folder, gib):
    path = os.path.join(folder, "big.csv")
    rng = random.Random(0)
    words = [f"w{i}" for i in range(5000)]
    target = int(gib * 2**30)
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        while file.tell() < target:
            block = [(" ".join(rng.choices(words, k=200)), f"class{rng.randrange(20)}") for _ in range(1000)]
            writer.writerows(block)
    size = os.path.getsize(path)
    count, seconds, peak = measure_load(path, "")
    ratio = peak / size
    verdict = "within" if ratio <= MEMORY_BOUND else "ABOVE"
    print(
        f"synthetic CSV {size / 2**30:.2f} GiB, {count:,} rows: loaded in {seconds:.0f} s, peak "
        f"{peak / 2**30:.2f} GiB above the imports = {ratio:.2f} x the file ({verdict} the bound of {MEMORY_BOUND} x)"
    )
    os.remove(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="news,big")
    parser.add_argument("--big-gib", type=float, default=1.0)
    args = parser.parse_args()
    rows = args.rows.split(",")
    with tempfile.TemporaryDirectory(prefix="tfxfer-own-data-") as folder:
        if "news" in rows:
            news_row(folder)
        if "big" in rows:
            big_row(folder, args.big_gib)


if __name__ == "__main__":
    main()
