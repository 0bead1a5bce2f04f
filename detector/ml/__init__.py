"""Django-free machine-learning code: how an image becomes a verdict.

preprocessing -> faces -> backbone/bundle -> predictor; training and evaluation
build on the same functions so that what is trained is what is served.
"""
