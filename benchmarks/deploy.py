"""Deploying the CIFAR-10 model: each format and quantization, side by side.

MobileNetV2 (ImageNet weights from ../shared/data) fine-tuned on the
CIFAR-10 20k subset with `tfxfer fit image`'s defaults (skipped when the
run folder already holds a finished fit), then `tfxfer export` with each
format x quantization (`auto` first: the default). For each: the file's
size, batch-1 latency on this CPU (median of `--repeats` calls on
different test images, LiteRT and ONNX Runtime on every core, beside the
SavedModel and the Keras model measured in the same run), the test
accuracy and the top-1 agreement with Keras on the 4,000 test images (from
the export's manifest). Then the issue's targets for int8 LiteRT, at the
default (`auto`: int8, which may keep a few layers in float) and for
`int8-only` (integer-only hardware).

    python benchmarks/deploy.py [--run-dir runs/bench-deploy] [--repeats 200]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
CIFAR = os.path.join(SHARED, "cifar10", "cifar10-train-20k.npz")
WEIGHTS = os.path.join(SHARED, "weights", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")
EXPORTS = [("litert", "auto"), ("litert", "none"), ("litert", "float16"), ("litert", "dynamic")]
EXPORTS += [("litert", "int8"), ("litert", "int8-only")]
EXPORTS += [("onnx", "none"), ("onnx", "dynamic"), ("saved_model", "none")]


def fit(run_dir):
    if os.path.isfile(os.path.join(run_dir, "model.keras")):
        return
    command = ["tfxfer", "fit", "image", "--source", "mobilenet_v2/imagenet", "--weights", WEIGHTS]
    subprocess.run([*command, "--data", CIFAR, "--run-dir", run_dir], check=True)


def export(run_dir, out, format, quantize):
    """`tfxfer export` in a fresh process, as a user runs it."""
    command = [sys.executable, "-m", "tfxfer.cli", "export", run_dir, out, "--format", format, "--quantize", quantize]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def median_ms(call, inputs, repeats):
    call(inputs[:1])  # warm-up: first-call tracing and allocation
    times = []
    for i in range(repeats):
        image = inputs[i % len(inputs)][None]
        start = time.perf_counter()
        call(image)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="runs/bench-deploy")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    fit(args.run_dir)

    import tensorflow as tf

    import tfxfer

    model = tfxfer.load_model(os.path.join(args.run_dir, "model.keras"))
    x_test = tfxfer.data.load_image_data(CIFAR).x_test  # the CLI's test split (seed 0)
    threads = os.cpu_count()
    rows, keys, float_layers, per_tensor, refused = [], [], {}, {}, []
    with tempfile.TemporaryDirectory() as out:
        for format, quantize in EXPORTS:
            path = os.path.join(out, f"{format}-{quantize}")
            start = time.perf_counter()
            exported = export(args.run_dir, path, format, quantize)
            if exported.returncode:  # a refusal: the check worked; say so and measure the rest
                refused.append(f"{format} {quantize}: {exported.stderr.strip().splitlines()[-1]}")
                continue
            manifest = None
            if format != "saved_model":
                with open(os.path.join(path, "manifest.json"), encoding="utf-8") as file:
                    manifest = json.load(file)
            minutes = (time.perf_counter() - start) / 60
            if format == "saved_model":
                saved = tf.saved_model.load(path)
                size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)
                latency = median_ms(lambda x, saved=saved: saved.serve(tf.constant(x)), x_test, args.repeats)
                rows.append(("saved_model", "none", size, latency))
                keys.append((format, quantize))
                continue
            runner = tfxfer.deploy.load_runner(format, os.path.join(path, manifest["file"]), num_threads=threads)
            check = manifest["verification"]
            size = os.path.getsize(os.path.join(path, manifest["file"]))
            label = f"{quantize}" + (f" (= {manifest['quantize']})" if quantize == "auto" else "")
            if manifest.get("float_layers"):
                float_layers[quantize] = manifest["float_layers"]
            if "per_tensor_layers" in manifest:
                per_tensor[quantize] = manifest["per_tensor_layers"]
            latency = median_ms(runner, x_test, args.repeats)
            rows.append(
                (
                    format,
                    label,
                    size,
                    latency,
                    check["accuracy"],
                    check["keras_accuracy"],
                    check["top1_agreement"],
                    minutes,
                )
            )
            keys.append((format, quantize))
    keras_ms = median_ms(lambda x: model.predict_on_batch(x), x_test, args.repeats)

    print(f"\nMobileNetV2 on CIFAR-10 ({len(x_test)} test images), batch 1 on {threads} CPU cores,", end=" ")
    print(f"median of {args.repeats}")
    header = f"{'format':12} {'quantize':16} {'size MB':>8} {'ms/image':>9} {'test acc':>9} {'agreement':>10}"
    print(f"{header} {'export min':>10}")
    for row in rows:
        if row[0] == "saved_model":
            print(f"{row[0]:12} {row[1]:16} {row[2] / 1e6:8.2f} {row[3]:9.2f} {'':>9} {'':>10}")
            continue
        fmt, label, size, latency, acc, keras_acc, agree, minutes = row
        figures = f"{size / 1e6:8.2f} {latency:9.2f} {100 * acc:8.2f}% {100 * agree:9.2f}% {minutes:10.1f}"
        print(f"{fmt:12} {label:16} {figures}")
    print(f"{'keras':12} {'(predict_on_batch)':16} {'':>8} {keras_ms:9.2f} {100 * rows[0][5]:8.2f}%")

    for line in refused:
        print(f"refused: {line}")
    for quantize, layers in float_layers.items():
        print(f"{quantize}: kept in float: {', '.join(layers)}")
    for quantize, count in per_tensor.items():
        print(f"{quantize}: {count} layers stored per tensor")
    by_key = dict(zip(keys, rows, strict=True))
    float_file, saved = by_key[("litert", "none")], by_key[("saved_model", "none")]
    for quantize in ("auto", "int8-only"):
        int8 = by_key[("litert", quantize)]
        print(f"\nTargets (int8 LiteRT, --quantize {quantize}):")
        print(f"  size {100 * int8[2] / float_file[2]:.1f} % of the float32 file (at most 30 %)")
        print(f"  test accuracy {100 * (int8[4] - int8[5]):+.2f} points from Keras (within 1)")
        print(f"  latency {int8[3] / saved[3]:.2f} x the SavedModel's (at most 0.5)")
    floats = [by_key[key] for key in (("litert", "none"), ("litert", "float16"), ("onnx", "none"))]
    print(
        "  float agreement with Keras: "
        + ", ".join(f"{r[0]} {r[1]} {100 * r[6]:.2f} %" for r in floats)
        + " (at least 99.9 %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
