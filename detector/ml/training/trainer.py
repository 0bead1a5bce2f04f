"""The fine-tuning loop: the upper blocks and the head, on cached features, with a mask head beside the classifier."""

from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)


class MaskedTrainer:
    """Fine-tunes the upper blocks and the head on cached features, with a mask head beside the classifier.

    Loss: the weighted binary cross-entropy of the fake logit, plus
    ``mask_weight`` times the per-cell cross-entropy of the mask head against
    the share of each cell that was changed. The mask head exists only here:
    the bundle keeps the classifier alone, so serving is unchanged.
    """

    def __init__(self, top, top_backbone, *, lr: float, steps: int, mask_weight: float, bf16: bool):
        import keras
        from keras import layers

        self.top, self.top_backbone, self.mask_weight, self.bf16 = top, top_backbone, mask_weight, bf16
        for layer in top_backbone.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.trainable = False  # small data: keep ImageNet statistics
        features = keras.Input(top.input_shape[1:], name="features")
        fmap = top_backbone(features)
        logit = top.get_layer("fake_logit")(top.get_layer("dropout")(top.get_layer("pool")(fmap)))
        mask = layers.Conv2D(1, 1, name="mask_logit", dtype="float32")(layers.Dropout(0.1, name="mask_dropout")(fmap))
        self.model = keras.Model(features, [logit, mask])
        warmup = min(200, steps // 10)
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, max(1, steps - warmup), alpha=0.02, warmup_target=lr, warmup_steps=warmup
        )
        self.optimizer = keras.optimizers.AdamW(schedule, weight_decay=0.01)

    def _set_precision(self, policy: str) -> None:
        """1x1 convolutions in bfloat16 run on the CPU's matrix units (AMX); the rest stays float32."""
        import keras

        for layer in self.top_backbone.layers:
            if type(layer) is keras.layers.Conv2D:
                layer.dtype_policy = policy

    def fit(self, feats, y, w, targets, mask_weights, *, epochs: int, batch: int, seed: int, validate):
        """Train for ``epochs``; after each, ``validate()`` gives the val AUC; the best epoch's weights stay."""
        import tensorflow as tf

        bce = tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction="none")
        model, optimizer, mask_weight = self.model, self.optimizer, self.mask_weight
        cells = float(targets.shape[1] * targets.shape[2])

        @tf.function(reduce_retracing=True)
        def step(x, yb, wb, tb, mwb):
            with tf.GradientTape() as tape:
                logit, mask = model(x, training=True)
                logit, mask = tf.cast(logit, tf.float32), tf.cast(mask, tf.float32)[..., 0]
                cls = tf.reduce_sum(wb * bce(yb[:, None], logit)) / tf.reduce_sum(wb)
                per_cell = tf.nn.sigmoid_cross_entropy_with_logits(tb, mask)
                seg = tf.reduce_sum(mwb[:, None, None] * per_cell) / (tf.reduce_sum(mwb) * cells + 1e-6)
                loss = cls + mask_weight * seg
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return cls, seg

        history, best = [], {"auc": -1.0}
        if self.bf16:
            self._set_precision("mixed_bfloat16")
        try:
            for epoch in range(epochs):
                order = np.random.default_rng([seed, 5, epoch]).permutation(len(feats))
                sums = np.zeros(2)
                bar = tqdm(range(0, len(order), batch), desc=f"fine-tune epoch {epoch + 1}/{epochs}", unit="batch")
                for n, start in enumerate(bar, 1):
                    ids = np.sort(order[start : start + batch])
                    cls, seg = step(
                        tf.constant(feats[ids], tf.float32),
                        tf.constant(y[ids]),
                        tf.constant(w[ids]),
                        tf.constant(targets[ids], tf.float32),
                        tf.constant(mask_weights[ids]),
                    )
                    sums += (float(cls), float(seg))
                    if n % 20 == 0:
                        bar.set_postfix(loss=f"{sums[0] / n:.4f}", mask=f"{sums[1] / n:.4f}")
                auc = validate()
                loss, mask_loss = sums / max(1, len(bar))
                history.append(
                    {
                        "stage": "fine-tune",
                        "epoch": epoch + 1,
                        "train_loss": loss,
                        "mask_loss": mask_loss,
                        "val_auc": auc,
                    }
                )
                log.info("epoch %d: loss %.4f, mask loss %.4f, val AUC %.4f", epoch + 1, loss, mask_loss, auc)
                if auc > best["auc"]:
                    best.update(auc=auc, weights=self.top.get_weights(), where=f"fine-tune epoch {epoch + 1}")
        finally:
            self._set_precision("float32")
        self.top.set_weights(best["weights"])
        return history, best
