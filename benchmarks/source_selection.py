"""Do the transferability scores pick the source that fine-tunes best?

Target: digits 5-9 (scikit-learn's 8x8 images), `--labels` per class for
training (what a user has; the scores see only these), the rest for the
test. Candidate sources, of known different quality:
  - the digits CNN trained on digits 0-4 (the shipped `digits04_cnn`);
  - the same CNN after one epoch on digits 0-4 (partially trained);
  - the same CNN with random weights;
  - MobileNetV2 with ImageNet weights at 32 and at 96 px (the digits scaled
    to 0-255 and repeated to three channels), from `--weights` (a local
    `_224_no_top.h5`; default: ../shared/data/weights) or the Keras cache;
  - MobileNetV2 with random weights at 32 px.
For each source: LogME, H-score, LEEP and NCE (N-LEEP, Gaussian-mixture
"classes") from `tfxfer.methods.rank_sources`, and the test accuracy that
`tfxfer.fine_tune` reaches with its defaults (mean over `--seeds`). Then the
rank correlation (Kendall's tau, Spearman's rho) between each score and
that accuracy, over the sources. A score that ranks the sources as
fine-tuning does gets 1.

    python benchmarks/source_selection.py [--labels 20] [--seeds 2]
"""

import argparse
import os
import time

import numpy as np

WEIGHTS_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
SHARED_WEIGHTS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "weights", WEIGHTS_FILE)


def digit_sources(seed=0):
    """The three digits CNNs: trained (shipped), one epoch, random."""
    import keras

    import tfxfer
    from tfxfer.data import digit_images
    from tfxfer.sources import feature_extractor

    images, labels = digit_images((0, 1, 2, 3, 4))
    partial = feature_extractor(seed)
    classifier = keras.Sequential([partial, keras.layers.Dense(5)])
    classifier.compile(
        optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    classifier.fit(images, labels, epochs=1, batch_size=256, verbose=0)  # four steps
    return {
        "digits CNN, trained": lambda: tfxfer.HubFeatures(tfxfer.preset_path("embedded")),
        "digits CNN, 1 epoch": lambda: _copy(partial),
        "digits CNN, random": lambda: feature_extractor(seed + 1),
    }


def _copy(model):
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def mobilenet_sources(weights):
    import tfxfer

    sources = {"MobileNetV2 random, 32 px": lambda: tfxfer.ImageBackbone("mobilenet_v2", weights=None, input_size=32)}
    if weights:
        for size in (32, 96):
            sources[f"MobileNetV2 ImageNet, {size} px"] = lambda size=size: tfxfer.ImageBackbone(
                "mobilenet_v2", weights=weights, input_size=size
            )
    return sources


def inputs_for(source, images):
    """Digits as the source takes them: 8x8 grey in [0, 16], or RGB in [0, 255]."""
    import tfxfer

    if isinstance(source, tfxfer.ImageBackbone):
        return np.repeat(images * (255 / 16), 3, axis=-1).astype("float32")
    return images


def fine_tuned_accuracy(make_source, train, test, seed):
    import keras

    import tfxfer

    keras.utils.set_random_seed(seed)
    source = make_source()
    model = tfxfer.ImageClassifier(source, 5, input_shape=inputs_for(source, train[0][:1]).shape[1:])
    tfxfer.fine_tune(model, inputs_for(source, train[0]), train[1], verbose=0)
    return float(np.mean(model.predict(inputs_for(source, test[0]), verbose=0).argmax(-1) == test[1]))


def run(per_class, seeds, weights):
    from tfxfer.data import digit_images, few_label_split
    from tfxfer.methods import SCORES, rank_sources

    images, labels = digit_images((5, 6, 7, 8, 9))
    labels = labels - 5
    sources = {**digit_sources(), **mobilenet_sources(weights)}
    scores, accuracy, seconds = {}, {}, {}
    for name, make in sources.items():
        start = time.perf_counter()
        per_seed, rows = [], []
        for seed in range(seeds):
            train, test = few_label_split(labels, per_class, seed)
            source = make()
            x = inputs_for(source, images[train])
            rows.append(rank_sources({name: source}, x, labels[train], seed=seed)[0])
            test_pair = (images[test], labels[test])
            per_seed.append(fine_tuned_accuracy(make, (images[train], labels[train]), test_pair, seed))
        scores[name] = {score: float(np.mean([row[score] for row in rows])) for score in SCORES}
        accuracy[name], seconds[name] = float(np.mean(per_seed)), time.perf_counter() - start
        print(f"  {name}: fine-tuned {100 * accuracy[name]:.1f} %, {seconds[name]:.0f} s", flush=True)
    return scores, accuracy, seconds


def main():
    from scipy.stats import kendalltau, spearmanr

    from tfxfer.methods import SCORES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=20, help="labelled target images per class")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--weights", default=SHARED_WEIGHTS, help="MobileNetV2 _224_no_top.h5; 'imagenet': Keras cache")
    args = parser.parse_args()
    weights = args.weights if args.weights == "imagenet" or os.path.isfile(args.weights) else None
    if weights is None:
        print(f"No MobileNetV2 weights at {args.weights}: the ImageNet rows are left out.")
    scores, accuracy, seconds = run(args.labels, args.seeds, weights)
    names = sorted(accuracy, key=lambda name: -accuracy[name])
    print(f"\nDigits 5-9, {args.labels} labels per class, {args.seeds} seeds; sources by fine-tuned test accuracy")
    print(f"{'source':30s} {'fine-tuned %':>12s} " + " ".join(f"{s:>9s}" for s in SCORES) + f" {'seconds':>8s}")
    for name in names:
        cells = " ".join(f"{scores[name][s]:9.3f}" for s in SCORES)
        print(f"{name:30s} {100 * accuracy[name]:12.1f} {cells} {seconds[name]:8.0f}")
    truth = [accuracy[name] for name in names]
    print(f"\nrank correlation with the fine-tuned accuracy over {len(names)} sources")
    for score in SCORES:
        values = [scores[name][score] for name in names]
        tau, rho = kendalltau(values, truth)[0], spearmanr(values, truth)[0]
        print(f"{score:8s} Kendall tau {tau:+.2f}   Spearman rho {rho:+.2f}")


if __name__ == "__main__":
    main()
