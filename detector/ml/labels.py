"""The verdicts a model gives, defined once: the database, the API and the pages use these same words.

``No face``: no face was found, so nothing was judged; the detector judges faces only.
"""

LABEL_REAL, LABEL_FAKE, LABEL_UNCERTAIN = "Real", "Deepfake", "Uncertain"
LABEL_NO_FACE = "No face"
