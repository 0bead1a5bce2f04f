"""TensorFlow runtime helpers shared by the face detector and the classifier."""

from __future__ import annotations


def tflite_interpreter(
    model_path: str | None = None, num_threads: int | None = None, model_content: bytes | None = None
):
    """A TFLite interpreter from LiteRT where installed, else from TensorFlow."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=model_path, model_content=model_content, num_threads=num_threads)
