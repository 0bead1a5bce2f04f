"""Training: recipes, data, augmentation, networks, fitting calibration, thresholds and ensembles, export.

Imports inference and measurement.
"""
