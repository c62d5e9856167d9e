"""Whether a model's activations fit this machine, checked before any work.

A larger input multiplies every activation: MobileNetV2 at 4096 px keeps
1,800 times what it keeps at 96 px, and TensorFlow, out of memory, may kill
the process without a word. The activations a model computes are known from
its layers' symbolic output shapes, so `check_activations` refuses a size
or batch that cannot fit before a single image is read in.
"""

import math
import os

from tfxfer.walk import walk_layers

FLOAT_BYTES = 4
HEADROOM = 0.8  # of the memory free now: weights, data and TensorFlow's own share the rest


def available_bytes():
    """The memory free for new allocations (`MemAvailable` on Linux), or None where unknown."""
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def activation_elements(model):
    """`(total, largest)` values per example over the outputs of `model`'s
    layers (nested ones included) whose shapes are fully known: what
    training keeps for the backward pass, and the largest single output."""
    total = largest = 0
    for layer in walk_layers(model):
        if layer is model or hasattr(layer, "layers"):  # a container's output is its last layer's
            continue
        try:
            output = layer.output
        except (AttributeError, ValueError):  # never called symbolically, or called more than once
            continue
        shape = getattr(output, "shape", None)
        if shape is None or len(shape) < 2 or any(dim is None for dim in shape[1:]):
            continue
        count = math.prod(shape[1:])
        total, largest = total + count, max(largest, count)
    return total, largest


def check_activations(model, batch_size, training, what, available=None):
    """Refuses, naming `what` (e.g. `"--input-size 4096"`), a `batch_size`
    whose activations cannot fit the free memory: all of them while
    `training` (and as much again for their gradients), the largest two
    layers' in inference. Returns the bytes needed (0 where unknown)."""
    total, largest = activation_elements(model)
    per_example = FLOAT_BYTES * (2 * total if training else 2 * largest)
    available = available_bytes() if available is None else available
    needed = per_example * batch_size
    if not per_example or available is None or needed <= HEADROOM * available:
        return needed
    fits = int(HEADROOM * available // per_example)
    option = what.split()[0]
    advice = f"pass --batch-size {fits} or less, or lower {option}" if fits >= 1 else f"lower {option}"
    raise ValueError(
        f"{what} with --batch-size {batch_size} needs about {needed / 2**30:,.1f} GiB for the model's activations "
        f"while {'fine-tuning' if training else 'extracting features'}, and this machine has "
        f"{available / 2**30:,.1f} GiB free: {advice}."
    )
