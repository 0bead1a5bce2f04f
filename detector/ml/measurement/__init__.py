"""Measuring: datasets' manifests, evaluation, model cards, promotion.

Imports inference, never training.
"""
