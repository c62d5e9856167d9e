"""The values each named choice takes, in one module that imports nothing
heavy: the CLI offers them before TensorFlow loads, and the modules that
act on them check against the same tuples."""

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
TEXT_ENCODERS = ("vectors", "hybrid", "rnn")
BN_POLICIES = ("frozen", "train")
SOLVERS = ("adam", "auto")
