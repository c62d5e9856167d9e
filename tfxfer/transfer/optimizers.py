"""Per-group learning rates for Keras optimizers, and the default schedule.

Keras has no per-layer learning rates. Scaling a group's *gradient* is wrong
for Adam and its kin (their update is invariant to the gradient's scale), so
these optimizers scale each variable's *update*: its learning rate, and its
decoupled weight decay, are multiplied by the variable's multiplier.
"""

import keras

from tfxfer._compat import PerGroupWeightDecay, optimizer_decays, optimizer_variable_index


class _RateMultipliers(PerGroupWeightDecay):
    """Mixin: `rate_multipliers` maps variable paths (or path prefixes) to factors."""

    def __init__(self, *args, rate_multipliers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.rate_multipliers = {str(k): float(v) for k, v in (rate_multipliers or {}).items()}
        self._factor_by_index = {}

    def build(self, variables):
        super().build(variables)
        for index, variable in enumerate(variables):
            self._factor_by_index[index] = self._factor_of_path(variable.path)

    def _factor_of_path(self, path):
        """The multiplier of the longest prefix of `path` that has one (1 if none)."""
        matches = [p for p in self.rate_multipliers if path == p or path.startswith(p.rstrip("/") + "/")]
        return self.rate_multipliers[max(matches, key=len)] if matches else 1.0

    def update_step(self, gradient, variable, learning_rate):
        factor = self._factor_by_index.get(optimizer_variable_index(self, variable), 1.0)
        learning_rate = keras.ops.cast(learning_rate, variable.dtype) * factor
        if self.weight_decay and optimizer_decays(self, variable):
            # Decoupled decay at the group's rate (the base class would use the base rate).
            decay = keras.ops.cast(self.weight_decay, variable.dtype)
            variable.assign(variable - variable * decay * learning_rate)
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "rate_multipliers": dict(self.rate_multipliers)}


@keras.saving.register_keras_serializable(package="tfxfer")
class Adam(_RateMultipliers, keras.optimizers.Adam):
    """`keras.optimizers.Adam` with per-group rate multipliers (`rate_multipliers`)."""


@keras.saving.register_keras_serializable(package="tfxfer")
class AdamW(_RateMultipliers, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with per-group rate multipliers (`rate_multipliers`)."""


@keras.saving.register_keras_serializable(package="tfxfer")
class SGD(_RateMultipliers, keras.optimizers.SGD):
    """`keras.optimizers.SGD` with per-group rate multipliers (`rate_multipliers`)."""


OPTIMIZERS = {"adam": Adam, "adamw": AdamW, "sgd": SGD}


def warmup_cosine(learning_rate, steps, warmup_fraction=0.1):
    """Linear warm-up over `warmup_fraction` of `steps`, then cosine decay to 0."""
    warmup = int(steps * warmup_fraction)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else learning_rate,
        decay_steps=max(steps - warmup, 1),
        warmup_target=learning_rate if warmup else None,
        warmup_steps=warmup,
    )
