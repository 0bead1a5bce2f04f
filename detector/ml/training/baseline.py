"""The seed's approach, measured the same way as the detector, for the model card.

Frozen ImageNet EfficientNet-Lite0 features of the whole image (resized to
224 px, no face crop), a logistic-regression head fitted on ``train``, and a
fixed 0.5 threshold, as the original Flask app did.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..inference.preprocessing import decode_image
from ..labels import LABEL_FAKE, LABEL_REAL
from ..measurement.dataset import read_manifest
from ..measurement.evaluation import Scores, format_table, report

SIZE = 224


def whole_images(samples) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(decode_image(str(s.path)).resize((SIZE, SIZE), Image.BILINEAR)) for s in samples])


def pooled_features(samples, batch: int = 128) -> np.ndarray:
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    from .backbone import build_efficientnet_lite0, load_imagenet_weights, scale_pixels

    backbone = build_efficientnet_lite0(SIZE)
    load_imagenet_weights(backbone)
    model = keras.Sequential([backbone, keras.layers.GlobalAveragePooling2D()])
    run = tf.function(lambda x: model(scale_pixels(x), training=False))
    out = []
    for start in tqdm(range(0, len(samples), batch), desc="baseline features", unit="batch"):
        out.append(run(tf.constant(whole_images(samples[start : start + batch]), tf.float32)).numpy())
    return np.concatenate(out)


def run(dataset: Path, split: str = "test") -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = read_manifest(dataset, "train"), read_manifest(dataset, split)
    head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    head.fit(pooled_features(train), [s.label for s in train])
    probs = head.predict_proba(pooled_features(test))[:, 1]
    scores = Scores(
        labels=np.array([s.label for s in test]),
        probs=probs,
        verdicts=np.where(probs >= 0.5, LABEL_FAKE, LABEL_REAL).astype(object),
        face_found=np.zeros(len(test), bool),
        sources=np.array([s.source for s in test], object),
        unreadable=[],
    )
    rep = report(scores, 0.5, "seed baseline: frozen EfficientNet-Lite0 + logistic head, whole image, threshold 0.5")
    for group in (rep["overall"], *rep["by_source"].values()):
        group["face_found_rate"] = None  # it looks for no faces
    return rep


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", type=Path, default=Path(__file__).resolve().parents[4] / "shared/datasets/faces")
    p.add_argument("--split", default="test")
    p.add_argument("--out", type=Path, help="write the JSON report here")
    args = p.parse_args(argv)
    rep = run(args.dataset, args.split)
    print(format_table(rep))
    if args.out:
        args.out.write_text(json.dumps(rep, indent=2) + "\n")


if __name__ == "__main__":
    main()
