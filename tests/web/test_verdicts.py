"""What a verdict says and claims: No face where no face was judged, one look per verdict, words that follow
the calibrated probability and the thresholds, and a reviewer's finding shown to the owner."""

from http import HTTPStatus

import pytest
from django.urls import reverse
from django.utils import timezone

from detector.models import Detection, percent_text
from tests.conftest import image_bytes
from tests.web.conftest import upload_file

pytestmark = pytest.mark.django_db


def upload(client):
    client.post(reverse("detector:upload"), {"image": upload_file()})
    return Detection.objects.order_by("-created_at").first()


def text_of(response) -> str:
    return " ".join(response.content.decode().split())


def test_no_face_means_no_verdict_on_every_page_and_in_the_api(alice, stub_detector, api):
    stub_detector.face_found = False
    detection = upload(alice)
    assert detection.label == "No face" and detection.fake_probability is None and detection.confidence is None
    assert detection.centre_score == pytest.approx(0.9)  # kept for reviewers
    page = text_of(alice.get(detection.get_absolute_url()))
    assert (
        'class="verdict verdict-no-face"' in page and "No face was found in this image, so nothing was judged" in page
    )
    assert 'id="faces-heading"' not in page and "toggle-heatmap" not in page and "Fake probability" not in page
    assert "90 %" not in page  # the centre square's score is no verdict
    history = text_of(alice.get(reverse("detector:history"), {"label": "No face"}))
    assert 'class="badge badge-no-face">No face' in history and "% fake" not in history
    assert "No face" in text_of(alice.get(reverse("detector:overview")))


def test_the_api_gives_no_probability_and_no_faces_for_an_image_without_one(api, stub_detector):
    stub_detector.face_found = False
    response = api.post(reverse("api:detections"), {"image": upload_file()})
    body = response.json()["results"][0]["detection"]
    assert body["label"] == "No face" and body["face_found"] is False
    assert body["fake_probability"] is None and body["confidence"] is None and body["faces"] == []
    listed = api.get(reverse("api:detections"), {"label": "No face"}).json()["results"]
    assert [d["id"] for d in listed] == [body["id"]]


def test_existing_detections_without_a_face_are_relabelled_by_the_migration(stub_detector, alice):
    from importlib import import_module

    from django.apps import apps

    detection = upload(alice)
    old = {"label": "Deepfake", "face_found": False, "fake_probability": 0.96, "confidence": 0.96}
    Detection.objects.filter(pk=detection.pk).update(faces=[{"box": None, "fake_probability": 0.96}], **old)
    face = upload(alice)
    migration = import_module("detector.migrations.0004_no_face_label")
    migration.relabel_detections_without_a_face(apps, None)
    detection.refresh_from_db()
    assert (detection.label, detection.fake_probability, detection.confidence) == ("No face", None, None)
    assert detection.faces == [{"box": None, "fake_probability": 0.96, "label": "No face"}]
    assert Detection.objects.get(pk=face.pk).label == "Deepfake"  # one with a face keeps its verdict
    migration.give_the_centre_square_its_old_verdict(apps, None)
    detection.refresh_from_db()
    assert (detection.label, detection.fake_probability) == ("Deepfake", 0.96)


@pytest.mark.parametrize(
    "p, label, style",
    [(0.9, "Deepfake", "deepfake"), (0.45, "Uncertain", "uncertain"), (0.02, "Real", "real")],
)
def test_each_verdict_has_its_own_look_on_every_page(alice, stub_detector, p, label, style):
    stub_detector.fake_probability = p
    detection = upload(alice)
    assert detection.label == label
    page = text_of(alice.get(detection.get_absolute_url()))
    assert f'class="verdict verdict-{style}"' in page and f'class="scale scale-{style}"' in page
    assert f'class="facebox face-{style}"' in page and f'class="face-card face-{style}"' in page
    assert f'class="badge badge-{style}">{label}' in text_of(alice.get(reverse("detector:history")))
    assert "Confidence in this verdict" not in page


def test_uncertain_shows_its_probability_and_band_not_a_confidence(alice, stub_detector):
    stub_detector.fake_probability = 0.45  # the stub's thresholds: Real below 0.401, Deepfake from 0.5
    detection = upload(alice)
    page = text_of(alice.get(detection.get_absolute_url()))
    assert "The model cannot tell" in page and "in the undecided band" in page
    assert "Fake probability <strong>45 %</strong>: in the undecided band, between 40 % and 50 %" in page
    assert "Calibrated probability that" not in page  # Uncertain claims neither side


def test_no_probability_is_shown_as_certain():
    assert [percent_text(p) for p in (0.0, 0.004, 0.5, 0.996, 1.0)] == ["< 1 %", "< 1 %", "50 %", "> 99 %", "> 99 %"]


def test_the_words_say_where_the_score_stands_among_validation_images(shipped_detector):
    from detector.services.verdicts import explain, out_of_100

    facts = {"meta": shipped_detector.meta}
    thresholds = shipped_detector.meta.thresholds
    fake = Detection(status="done", label="Deepfake", fake_probability=thresholds.deepfake_from, model_version="x")
    fake.model_version = shipped_detector.version
    # At the Deepfake threshold, at most 3 % of validation reals score as high: at least 97 of 100 score lower.
    standing = explain(fake, facts).standing
    n = int(standing.split("higher than ")[1].split(" of 100")[0])
    assert 97 <= n <= 99
    real = Detection(status="done", label="Real", fake_probability=thresholds.real_below * 0.999)
    real.model_version = shipped_detector.version
    n = int(explain(real, facts).standing.split("lower than ")[1].split(" of 100")[0])
    assert 89 <= n <= 90  # the lower threshold lets at most 10 % of validation fakes below it
    assert out_of_100(1.0) == 99 and out_of_100(0.974) == 97


def test_the_owner_sees_the_reviewers_finding_but_not_who_reviewed(alice, stub_detector, api, admin_user):
    detection = upload(alice)
    Detection.objects.filter(pk=detection.pk).update(
        review_verdict="real",
        review_note="The original is on the agency's wire.",
        reviewed_by=admin_user,
        reviewed_at=timezone.now(),
    )
    page = text_of(alice.get(detection.get_absolute_url()))
    assert "Reviewed: real" in page and "The original is on the agency&#x27;s wire." in page
    assert admin_user.get_username() not in page
    assert "Reviewed: real" in text_of(alice.get(reverse("detector:history")))


def test_the_api_gives_the_review_outcome(api, stub_detector, user, admin_user):
    response = api.post(reverse("api:detections"), {"image": upload_file()})
    pk = response.json()["results"][0]["detection"]["id"]
    assert api.get(reverse("api:detection", args=[pk])).json()["review"] is None
    Detection.objects.filter(pk=pk).update(review_verdict="fake", review_note="", reviewed_by=admin_user)
    review = api.get(reverse("api:detection", args=[pk])).json()["review"]
    assert review["verdict"] == "fake" and review["note"] == "" and set(review) == {"verdict", "note", "reviewed_at"}


def test_a_missing_detection_gets_the_sites_own_404_page(alice):
    response = alice.get(reverse("detector:result", args=["6f1c4a43-5b7e-4a8e-9a0e-2d8f7b1c0a11"]))
    assert response.status_code == HTTPStatus.NOT_FOUND
    page = text_of(response)
    assert "Not found" in page and 'class="site-header"' in page


def test_the_favicon_is_the_sites_own(client):
    response = client.get("/favicon.ico")
    assert response.status_code == HTTPStatus.MOVED_PERMANENTLY and response["Location"].endswith(".svg")


def test_a_damaged_upload_is_refused_in_plain_words(client, stub_detector):
    from tests.conftest import image_bytes

    response = client.post(reverse("detector:upload"), {"image": upload_file(data=image_bytes()[:900])})
    page = text_of(response)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "The image is truncated or damaged: part of the file is missing or corrupt." in page
    assert "bytes not processed" not in page and "cannot" not in page.split("truncated or damaged")[1][:120]


def test_with_several_faces_each_is_boxed_and_scored_and_the_deciding_one_named(alice, stub_detector):
    detection = upload(alice)
    faces = [
        {"box": [10, 10, 60, 60], "fake_probability": 0.12, "label": "Real"},
        {"box": [150, 20, 70, 70], "fake_probability": 0.9, "label": "Deepfake"},
    ]
    Detection.objects.filter(pk=detection.pk).update(faces=faces)
    page = text_of(alice.get(detection.get_absolute_url()))
    assert page.count('class="facebox face-') == 2
    assert "Face 1 · <strong>12 % fake</strong>" in page and "Face 2 · <strong>90 % fake</strong>" in page
    assert "the most suspicious one decides the verdict" in page
    cards = page.split('class="face-card ')[1:]
    assert [("This face decided the verdict." in card) for card in cards] == [False, True]


def five_faces():
    """A group photo's faces as the face finder stores them (largest first), not as one reads them."""
    return [
        {"box": [420, 40, 90, 90], "fake_probability": 0.2, "label": "Real"},  # top row, right
        {"box": [30, 50, 80, 80], "fake_probability": 0.9, "label": "Deepfake"},  # top row, left
        {"box": [250, 60, 70, 70], "fake_probability": 0.5, "label": "Uncertain"},  # top row, middle
        {"box": [120, 210, 75, 75], "fake_probability": 0.3, "label": "Real"},  # bottom row, left
        {"box": [330, 200, 80, 80], "fake_probability": 0.1, "label": "Real"},  # bottom row, right
    ]


def test_faces_are_numbered_left_to_right_top_to_bottom_and_their_pictures_keep_their_addresses():
    detection = Detection(width=600, height=320, faces=five_faces(), model_version="stub-1")
    boxes = detection.face_boxes()
    assert [f["number"] for f in boxes] == [1, 2, 3, 4, 5]
    assert [f["index"] for f in boxes] == [2, 3, 1, 4, 5]  # the stored order, which the face URLs use
    assert [f["x"] for f in boxes] == [30, 250, 420, 120, 330]


def test_number_badges_stay_inside_the_image_and_never_cover_each_other():
    from detector.models import number_badge_boxes

    faces = [{"x": 0, "y": 0}, {"x": 5, "y": 5}, {"x": 590, "y": 310}, {"x": 10, "y": 2}]
    badges = number_badge_boxes(faces, 1.0, 600, 320, 30.0)
    for x0, y0, x1, y1 in badges:
        assert 0 <= x0 and 0 <= y0 and x1 <= 600 and y1 <= 320
    for i, a in enumerate(badges):
        for b in badges[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])


def test_a_faces_page_shows_its_crop_beside_its_heatmap_with_the_scale(alice, stub_detector):
    detection = upload(alice)
    Detection.objects.filter(pk=detection.pk).update(faces=five_faces(), width=600, height=320)
    page = text_of(alice.get(reverse("detector:face", args=[detection.pk, 1])))
    assert "Face 3:" in page  # stored first, third from the left
    assert reverse("detector:face_image", args=[detection.pk, 1, "heatmap"]) in page
    assert reverse("detector:face_image", args=[detection.pk, 1, "crop"]) in page
    assert 'class="heat-scale"' in page and "not where a manipulation is" in page
    assert "← Back to the result" in page and f"{detection.get_absolute_url()}#face-1" in page
    result = text_of(alice.get(detection.get_absolute_url()))
    assert reverse("detector:face", args=[detection.pk, 1]) in result
    assert alice.get(reverse("detector:face", args=[detection.pk, 9])).status_code == 404


def test_real_is_said_as_no_sign_found_and_claims_no_certainty(alice, api, stub_detector):
    stub_detector.fake_probability = 0.004
    detection = upload(alice)
    page = text_of(alice.get(detection.get_absolute_url()))
    assert "No sign of manipulation found" in page and detection.label == "Real"
    assert "a new kind of fake can look real to it" in page and 'href="/about-the-model/#unseen"' in page
    assert 'Calibrated probability that "Real" is right' not in page
    body = api.get(reverse("api:detection", args=[detection.pk])).json()
    assert body["label"] == "Real" and body["confidence"] is None
    Detection.objects.filter(pk=detection.pk).update(confidence=0.996)  # stored so before API 1.1
    assert api.get(reverse("api:detection", args=[detection.pk])).json()["confidence"] is None


def test_the_page_says_where_the_models_disagree(alice, stub_detector):
    detection = upload(alice)
    scores = [
        {"name": "a", "version": "1", "title": "A", "fake_probability": 0.47, "label": "Uncertain", "face": 1},
        {"name": "b", "version": "2", "title": "B", "fake_probability": 0.54, "label": "Uncertain", "face": 1},
        {"name": "c", "version": "3", "title": "C", "fake_probability": 0.1, "label": "Real", "face": 1},
        {
            "name": "e",
            "version": "4",
            "title": "E",
            "fake_probability": 0.42,
            "label": "Real",
            "face": 1,
            "ensemble": True,
        },
    ]
    Detection.objects.filter(pk=detection.pk).update(label="Real", fake_probability=0.42, model_scores=scores)
    page = text_of(alice.get(detection.get_absolute_url()))
    assert "The models disagree: 2 of 3 said otherwise: Uncertain (47 %); Uncertain (54 %)." in page


def test_the_misses_are_said_from_the_bundles_out_of_domain_figures(alice, folders, settings):
    import json as _json

    red, *_ = folders
    (red / "metrics-unseen.json").write_text(
        _json.dumps(
            {
                "kinds": [
                    {
                        "name": "dfdc",
                        "title": "DFDC swaps",
                        "fakes": 100,
                        "called_real": 0.3,
                        "caught": 0.2,
                        "reals_accused": 0.14,
                        "auc": 0.8,
                        "interval": [0.75, 0.85],
                    },
                ],
                "called_real": 0.3,
                "caught": 0.2,
            }
        )
    )
    from detector.services.inference import _bundle_facts

    _bundle_facts.cache_clear()
    from tests.web.conftest import upload_file

    alice.post(reverse("detector:upload"), {"image": upload_file(data=image_bytes("JPEG", color=(20, 40, 200)))})
    detection = Detection.objects.latest("created_at")
    faces = [{"box": [10, 10, 80, 80], "fake_probability": 0.1, "label": "Real"}]
    Detection.objects.filter(pk=detection.pk).update(label="Real", fake_probability=0.1, face_found=True, faces=faces)
    page = text_of(alice.get(detection.get_absolute_url()))
    assert "On fakes of kinds it was never trained on (dfdc swaps), this version called 30 % Real" in page
    about = text_of(alice.get(reverse("detector:about_model")))
    assert "DFDC swaps" in about and "0.80 (0.75–0.85)" in about
    assert "its reals called Deepfake" in about and "14.0 %" in about  # an unseen source's reals are accused too
    _bundle_facts.cache_clear()
