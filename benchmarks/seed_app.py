"""The seed's way of serving a detector, rebuilt only so that ``make bench`` can measure it beside ours.

Flask, a Keras MobileNetV2 at 224 px with a dense head, ``model.predict`` per
request, and every upload written to one shared ``uploaded.jpg`` that the next
request overwrites: as the original app did.  Never shipped, never imported by
the platform.  The weights are random (ImageNet weights cannot be downloaded
here); the arithmetic, and so the speed, is the same.

    SEED_UPLOAD_DIR=/tmp/x gunicorn -w 2 --chdir benchmarks seed_app:app
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402

UPLOAD = os.path.join(os.environ.get("SEED_UPLOAD_DIR", "/tmp"), "uploaded.jpg")

base = keras.applications.MobileNetV2(input_shape=(224, 224, 3), include_top=False, weights=None, pooling="avg")
model = keras.Sequential([base, keras.layers.Dense(1, activation="sigmoid")])
app = Flask(__name__)


@app.post("/predict")
def predict():
    request.files["image"].save(UPLOAD)
    img = keras.utils.load_img(UPLOAD, target_size=(224, 224))
    x = keras.applications.mobilenet_v2.preprocess_input(keras.utils.img_to_array(img)[None])
    score = float(model.predict(x, verbose=0)[0, 0])
    return jsonify(label="Real" if score > 0.5 else "Deepfake", confidence=round(max(score, 1 - score) * 100, 1))


@app.get("/")
def index():
    return "seed app\n"
