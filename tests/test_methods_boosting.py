"""TrAdaBoost: source examples the target disagrees with lose weight."""

import numpy as np
import pytest

from tfxfer.data import digit_images
from tfxfer.methods import TrAdaBoost


def test_tradaboost_outweighs_a_source_that_contradicts_the_target():
    images, labels = digit_images(tuple(range(10)))
    x = images.reshape(len(images), -1) / 16.0
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    source, target = order[: len(x) // 2], order[len(x) // 2 :]
    rotated = np.rot90(images[target], k=1, axes=(1, 2)).reshape(len(target), -1) / 16.0  # the target domain
    labelled = np.concatenate([np.flatnonzero(labels[target] == c)[:5] for c in range(10)])
    test = np.setdiff1d(np.arange(len(target)), labelled)
    from sklearn.linear_model import LogisticRegression

    pooled = LogisticRegression(max_iter=2000).fit(
        np.concatenate([x[source], rotated[labelled]]), np.concatenate([labels[source], labels[target][labelled]])
    )
    booster = TrAdaBoost(n_estimators=10).fit(x[source], labels[source], rotated[labelled], labels[target][labelled])
    pooled_accuracy = pooled.score(rotated[test], labels[target][test])
    boosted_accuracy = booster.score(rotated[test], labels[target][test])
    assert boosted_accuracy > pooled_accuracy + 0.1  # 0.75 vs 0.49 at this seed
    assert booster.source_weight_share_ < 0.5  # each domain started at half
    assert booster.decision_function(rotated[:3]).shape == (3, 10)
    with pytest.raises(ValueError, match="target 0 rows"):
        TrAdaBoost().fit(x[source], labels[source], rotated[:0], labels[:0])
