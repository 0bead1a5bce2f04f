"""The verdicts a model gives, defined once: the database, the API and the pages use these same words."""

LABEL_REAL, LABEL_FAKE, LABEL_UNCERTAIN = "Real", "Deepfake", "Uncertain"
