"""Serving: an image or a video -> a verdict, with bundles, engines, calibration applied and heatmaps.

Imports neither training nor measurement.
"""
