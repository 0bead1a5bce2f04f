"""Django-free machine learning, in three packages whose imports run one way (import-linter keeps it so):

- :mod:`.inference` serves: an image or a video becomes a verdict (decoding, faces, crops, bundles, engines,
  calibration applied, heatmaps, videos, the CLIP encoder);
- :mod:`.measurement` measures: datasets' manifests, evaluation through the serving path, model cards, promotion;
- :mod:`.training` trains: recipes, crops and copies, augmentation, networks, fitting calibration, thresholds and
  ensembles, the out-of-domain folds, export.

Training imports measurement and inference, measurement imports inference, inference imports neither; the labels
(:mod:`.labels`) are shared by all. The module map is in docs/development.md.
"""
