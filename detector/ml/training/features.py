"""The frozen lower blocks' output for every training copy, computed once and cached in memory.

Fine-tuning then runs the upper blocks only, on these features, which is what
makes a training stage fit the 2-core budget.
"""

from __future__ import annotations

from multiprocessing import Pool

import numpy as np
from tqdm import tqdm

from .copies import CopyMaker, make_copy, set_maker


def inference(net):
    """``net`` in inference mode as a traced TensorFlow function (batch norm and dropout frozen)."""
    import tensorflow as tf

    return tf.function(lambda x: net(x, training=False), reduce_retracing=True)


def cached_features(bottom, jobs: list, maker: CopyMaker, workers: int, batch: int = 128):
    """Every copy run once through the frozen lower blocks: (features float16, mask targets, mask weights).

    The copies are made in worker processes while this one runs the network.
    """
    import tensorflow as tf

    run = inference(bottom)
    feats = None
    targets = np.empty((len(jobs), maker.grid, maker.grid), np.float16)
    weights = np.empty(len(jobs), np.float32)
    pending = []

    def flush(end):
        nonlocal feats
        f = run(tf.constant(np.stack(pending), tf.float32)).numpy().astype(np.float16)
        if feats is None:
            feats = np.empty((len(jobs), *f.shape[1:]), np.float16)
        feats[end - len(pending) : end] = f
        pending.clear()

    with Pool(max(1, workers - 1), initializer=set_maker, initargs=(maker,)) as pool:
        made = pool.imap(make_copy, jobs, chunksize=32)
        for k, (pixels, target, weight) in enumerate(tqdm(made, total=len(jobs), desc="copies", unit="img")):
            pending.append(pixels)
            targets[k], weights[k] = target, weight
            if len(pending) == batch:
                flush(k + 1)
        if pending:
            flush(len(jobs))
    return feats, targets, weights


def extract_features(bottom, crops: np.ndarray, batch: int = 128) -> np.ndarray:
    import tensorflow as tf

    run = inference(bottom)
    return np.concatenate(
        [
            run(tf.constant(crops[i : i + batch], tf.float32)).numpy().astype(np.float16)
            for i in range(0, len(crops), batch)
        ]
    )
