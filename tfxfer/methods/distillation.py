"""Distillation: a student learns from a teacher's temperature-softened logits.

Built on `keras.distillation.Distiller` and `LogitsDistillation`: the
student's loss mixes cross-entropy on the labels (weight `alpha`) with the
divergence from the teacher's softened predictions (weight 1 - alpha); the
teacher is frozen. Both models must output logits.
"""

import keras


def distill(teacher, student, x, y, epochs, temperature=3.0, alpha=0.5, optimizer="adam", **fit_kwargs):
    """Trains `student` on `x, y` with `teacher`'s soft targets; returns the `History`.

    Args:
        teacher, student: Keras models with the same number of output logits.
        temperature: softmax temperature of the soft targets (higher: softer).
        alpha: weight of the label loss, in [0, 1]; the rest goes to the teacher.
        optimizer, **fit_kwargs: for `compile` and `fit`.

    Example:

    >>> import keras, numpy as np
    >>> x, y = np.random.default_rng(0).normal(size=(64, 4)), np.arange(64) % 2
    >>> hidden = keras.layers.Dense(16, activation="relu")
    >>> teacher = keras.Sequential([keras.Input((4,)), hidden, keras.layers.Dense(2)])
    >>> student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> history = distill(teacher, student, x, y, epochs=1, verbose=0)
    >>> sorted(k for k in history.history if k.endswith("loss"))
    ['distillation_loss', 'loss', 'student_loss', 'total_loss']
    """
    teacher_classes, student_classes = teacher.output_shape[-1], student.output_shape[-1]
    if teacher_classes != student_classes:
        raise ValueError(
            f"The teacher outputs {teacher_classes} logits and the student {student_classes}: "
            "they must predict the same classes."
        )
    distiller = keras.distillation.Distiller(
        teacher=teacher,
        student=student,
        # A KLDivergence instance, not the "kl_divergence" default: Keras (3.15)
        # softens both sides into probabilities only for an instance, and
        # would otherwise compare raw logits (a loss that goes negative).
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=temperature, loss=keras.losses.KLDivergence()
        ),
        student_loss_weight=alpha,
    )
    distiller.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return distiller.fit(x, y, epochs=epochs, **fit_kwargs)
