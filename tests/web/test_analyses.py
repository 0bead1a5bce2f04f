"""Analyses, not one verdict: each model version's analysis of an upload kept side by side, re-analysis of past
uploads (command and admin action, with progress), and the verdict that follows the active version."""

from http import HTTPStatus

import pytest
from django.core.management import call_command
from django.urls import reverse

from detector.models import Analysis, Detection, Reanalysis, Status
from detector.services import activation, registry
from tests.web.conftest import stored_files, upload

pytestmark = pytest.mark.django_db


def reanalyse(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("reanalyse", *args, stdout=out)
    return out.getvalue()


def test_each_upload_has_its_analysis_by_the_version_that_judged_it(folders, alice):
    detection = upload(alice)
    [analysis] = detection.analyses.all()
    assert (analysis.model_name, analysis.model_version) == ("sees-red", "1.0.0")
    assert (analysis.label, analysis.fake_probability, analysis.faces) == (
        detection.label,
        detection.fake_probability,
        detection.faces,
    )
    assert [m["name"] for m in detection.model_scores] == ["sees-red"] and detection.model_scores[0]["face"] == 1


def test_another_version_analyses_past_uploads_beside_the_verdict_and_never_twice(folders, alice, api):
    first, second = upload(alice), upload(alice)
    out = reanalyse("--version", "2.0.0")
    assert "2 uploads for sees-blue 2.0.0" in out and "analysed 2, failed 0, skipped 0 of 2" in out
    for detection in (first, second):
        detection.refresh_from_db()
        assert detection.model_version == "1.0.0"  # not the active version: the verdict shown stays
        by_version = {a.model_version: a for a in detection.analyses.all()}
        assert set(by_version) == {"1.0.0", "2.0.0"} and by_version["2.0.0"].model_name == "sees-blue"
    # The two tiny models see opposite colours: their scores differ on the same face.
    assert by_version["2.0.0"].fake_probability != by_version["1.0.0"].fake_probability

    assert "nothing to do" in reanalyse("--version", "sees-blue")  # by its folder's name: done already
    assert Analysis.objects.count() == 4
    runs = list(Reanalysis.objects.order_by("pk").values_list("total", "analysed", "skipped"))
    assert runs == [(2, 2, 0), (0, 0, 0)] and all(Reanalysis.objects.values_list("finished_at", flat=True))

    # Side by side, in the browser and the API, the verdict shown first.
    page = alice.get(reverse("detector:result", args=[first.pk])).content.decode()
    assert "2 model versions analysed this image" in page
    assert page.index("Version 1.0.0 (sees-red): the verdict shown") < page.index("Version 2.0.0 (sees-blue)")
    body = api.get(reverse("api:detection", args=[first.pk])).json()
    assert [(a["version"], a["current"]) for a in body["analyses"]] == [("1.0.0", True), ("2.0.0", False)]
    blue = body["analyses"][1]["models"][0]
    assert blue["name"] == "sees-blue" and blue["fake_probability"] == by_version["2.0.0"].fake_probability
    assert blue["faces"][0]["number"] == 1 and blue["label"] in ("Real", "Deepfake", "Uncertain")


def test_only_the_chosen_uploads_are_reanalysed(folders, alice):
    from datetime import date

    kept = upload(alice)
    Detection.objects.filter(pk=kept.pk).update(label="Real")
    upload(alice)
    assert "1 uploads" in reanalyse("--version", "2.0.0", "--label", "Real")
    assert set(Analysis.objects.filter(model_version="2.0.0").values_list("detection", flat=True)) == {kept.pk}
    assert "0 uploads" in reanalyse("--version", "2.0.0", "--since", date(2999, 1, 1).isoformat())


def test_activating_a_version_gives_the_uploads_it_analysed_its_verdict(folders, alice, staff):
    red, blue, _ = folders
    analysed, not_yet = upload(alice), upload(alice)
    reanalyse("--version", "2.0.0")
    Analysis.objects.filter(detection=not_yet, model_version="2.0.0").delete()
    blue_says = Analysis.objects.get(detection=analysed, model_version="2.0.0")

    activation.activate(blue, staff)
    analysed.refresh_from_db()
    not_yet.refresh_from_db()
    assert (analysed.model_version, analysed.label, analysed.fake_probability) == (
        "2.0.0",
        blue_says.label,
        blue_says.fake_probability,
    )
    assert not_yet.model_version == "1.0.0"  # until it is re-analysed
    assert "1 uploads for sees-blue 2.0.0" in reanalyse()  # the active version, the one it has not analysed
    not_yet.refresh_from_db()
    assert not_yet.model_version == "2.0.0"

    activation.activate(red, staff)  # rolling back: both get red's verdict again, kept all along
    assert set(Detection.objects.values_list("model_version", flat=True)) == {"1.0.0"}


def test_a_reanalysis_that_fails_leaves_the_verdict_shown(folders, alice, staff, monkeypatch):
    from detector.services import inference

    _, blue, _ = folders
    detection = upload(alice)
    activation.activate(blue, staff)

    def broken(image):
        raise ValueError("the network answered nothing")

    monkeypatch.setattr(inference.get_detector(), "judge", broken)
    assert "analysed 0, failed 1, skipped 0 of 1" in reanalyse()
    detection.refresh_from_db()
    assert (detection.status, detection.model_version) == (Status.DONE, "1.0.0")
    failed = Analysis.objects.get(detection=detection, model_version="2.0.0")
    assert failed.status == Status.FAILED and "the network answered nothing" in failed.error_message


def test_an_unknown_version_is_refused_with_the_ones_there_are(folders):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=r"no model version '9\.9\.9'.*sees-blue \(2\.0\.0\)"):
        reanalyse("--version", "9.9.9")
    assert not Reanalysis.objects.exists()


def test_the_admin_action_reanalyses_the_selected_uploads_with_a_chosen_version(folders, alice, reviewer, settings):
    settings.DETECTOR_VIDEO_WORKERS = 0  # no broker: the batch runs at once, in this thread
    red, blue, _ = folders
    chosen, other = upload(alice), upload(alice)
    changelist = reverse("admin:detector_detection_changelist")
    form = {"action": "reanalyse", "_selected_action": [str(chosen.pk)]}
    page = reviewer.post(changelist, form).content.decode()
    assert "1 upload selected" in page and "sees-red 1.0.0" in page and "(active)" in page
    response = reviewer.post(changelist, {**form, "apply": "1", "bundle": str(blue)}, follow=True)
    assert "1 upload(s) queued for sees-blue 2.0.0" in response.content.decode()
    assert Analysis.objects.filter(model_version="2.0.0").get().detection_id == chosen.pk
    assert not Analysis.objects.filter(detection=other, model_version="2.0.0").exists()

    run = Reanalysis.objects.get()
    assert (run.total, run.analysed, run.progress_percent, run.requested_by.username) == (1, 1, 100, "reviewer")
    progress = reviewer.get(reverse("admin:detector_reanalysis_changelist")).content.decode()
    assert '<progress max="100" value="100"></progress> 1 of 1' in progress
    detail = reviewer.get(reverse("admin:detector_detection_change", args=[chosen.pk])).content.decode()
    assert "Analyses by each model version" in detail and "sees-blue 2.0.0" in detail

    again = reviewer.post(changelist, {**form, "apply": "1", "bundle": str(blue)}, follow=True).content.decode()
    assert "0 upload(s) queued" in again and "1 left out: analysed by that version already" in again
    assert Analysis.objects.filter(model_version="2.0.0").count() == 1


def test_with_workers_each_upload_is_a_job_that_a_worker_analyses(folders, alice, settings, monkeypatch):
    from detector import tasks

    chosen = upload(alice)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent = []
    monkeypatch.setattr(tasks.reanalyse_detection, "delay", lambda *job: sent.append(job))
    assert "queued 1 jobs on the workers" in reanalyse("--version", "2.0.0")
    run = Reanalysis.objects.get()
    assert sent == [(run.pk, str(chosen.pk))] and run.finished_at is None
    assert tasks.reanalyse_detection.apply(args=sent[0]).get() == "analysed"  # as a worker runs it
    assert tasks.reanalyse_detection.apply(args=sent[0]).get() == "skipped"  # delivered twice: analysed once
    run.refresh_from_db()
    assert (run.analysed, run.skipped) == (1, 1) and run.finished_at is not None
    assert Analysis.objects.filter(model_version="2.0.0").count() == 1


def test_without_a_broker_the_admin_action_queues_nothing_and_says_so(folders, alice, reviewer, settings, monkeypatch):
    from kombu.exceptions import OperationalError as BrokerDown

    from detector import tasks

    _, blue, _ = folders
    chosen = upload(alice)
    settings.CELERY_TASK_ALWAYS_EAGER = False

    def down(*job):
        raise BrokerDown("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.reanalyse_detection, "delay", down)
    form = {"action": "reanalyse", "_selected_action": [str(chosen.pk)], "apply": "1", "bundle": str(blue)}
    response = reviewer.post(reverse("admin:detector_detection_changelist"), form, follow=True)
    assert response.status_code == HTTPStatus.OK
    assert "Nothing was queued: the job queue is unavailable" in response.content.decode()
    assert not Reanalysis.objects.exists() and not Analysis.objects.filter(model_version="2.0.0").exists()


def test_a_video_reanalysed_keeps_each_versions_stills_and_deleting_it_removes_them_all(
    alice, settings, media_root, monkeypatch, django_capture_on_commit_callbacks
):
    pytest.importorskip("av")
    from detector.services import reanalysis
    from tests.clips import SquareDetector
    from tests.conftest import installed
    from tests.web.test_video import clip_file

    settings.DETECTOR_VIDEO_WORKERS = 0
    other = SquareDetector()
    other.version = other.meta.version = "squares-2"
    monkeypatch.setattr(reanalysis, "detector_for", lambda path: other)
    monkeypatch.setattr(
        registry, "describe", lambda path: registry.ModelVersion(path=path, name="sq2", version="squares-2")
    )
    with installed(SquareDetector()):
        with django_capture_on_commit_callbacks(execute=True):
            alice.post(reverse("detector:upload"), {"image": clip_file()})
        detection = Detection.objects.get()
        assert detection.status == Status.DONE and detection.model_version == "squares-1"
        run, ids = reanalysis.plan("elsewhere/sq2")
        assert [reanalysis.reanalyse_one(run.pk, pk) for pk in ids] == ["analysed"]
    detection.refresh_from_db()
    assert detection.model_version == "squares-1"
    stills = {a.model_version: [s["image"] for t in a.tracks for s in t["stills"]] for a in detection.analyses.all()}
    assert stills["squares-1"] and stills["squares-2"] and not set(stills["squares-1"]) & set(stills["squares-2"])
    with django_capture_on_commit_callbacks(execute=True):
        assert alice.post(reverse("detector:delete", args=[detection.pk])).status_code == HTTPStatus.FOUND
    assert stored_files(media_root) == []


@pytest.mark.django_db(transaction=True)
def test_rows_made_before_analyses_become_their_versions_analyses_without_loss():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("detector", "0009_model_activation")]
    executor = MigrationExecutor(connection)
    after = executor.loader.graph.leaf_nodes()  # and back to the newest, for the tests that follow
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    OldDetection = old.get_model("detector", "Detection")
    old.get_model("detector", "ModelActivation").objects.create(bundle="/gone/v1", name="faces-v1", version="1.4.0")
    common = dict(sha256="0" * 64, image_format="JPEG", content_type="image/jpeg", size_bytes=1, width=100, height=80)
    faces = [
        {"box": [0, 0, 10, 10], "fake_probability": 0.2, "label": "Real"},
        {"box": [20, 0, 10, 10], "fake_probability": 0.9, "label": "Deepfake"},
    ]
    judged = OldDetection.objects.create(
        image="uploads/a.jpg",
        status="done",
        label="Deepfake",
        fake_probability=0.9,
        model_version="1.4.0",
        faces=faces,
        face_found=True,
        threshold=0.8,
        real_below=0.3,
        **common,
    )
    # A version no longer shipped, whose verdict provenance changed: the model's own label is kept.
    ruled = OldDetection.objects.create(
        image="uploads/b.jpg",
        status="done",
        label="Deepfake",
        model_label="Real",
        fake_probability=0.1,
        model_version="0.9.0",
        faces=[{"box": [0, 0, 10, 10], "fake_probability": 0.1}],
        face_found=True,
        **common,
    )
    failed = OldDetection.objects.create(
        image="uploads/c.jpg",
        status="failed",
        label="No verdict",
        model_version="1.4.0",
        error_message="broken",
        **common,
    )
    pending = OldDetection.objects.create(image="uploads/d.jpg", status="pending", **common)

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    new = executor.loader.project_state(after).apps
    analyses = {a.detection_id: a for a in new.get_model("detector", "Analysis").objects.all()}
    assert set(analyses) == {judged.pk, ruled.pk, failed.pk}  # the pending one has no analysis yet
    a = analyses[judged.pk]
    assert (a.model_name, a.model_version, a.label, a.fake_probability, a.faces) == (
        "faces-v1",
        "1.4.0",
        "Deepfake",
        0.9,
        faces,
    )
    assert (a.threshold, a.real_below) == (0.8, 0.3)
    assert a.model_scores == [
        {"name": "faces-v1", "version": "1.4.0", "title": "", "fake_probability": 0.9, "label": "Deepfake", "face": 2}
    ]
    b = analyses[ruled.pk]
    assert (b.model_name, b.model_version, b.label, b.model_label) == ("", "0.9.0", "Deepfake", "Real")
    assert b.model_scores[0]["label"] == "Real"
    assert (analyses[failed.pk].status, analyses[failed.pk].model_scores) == ("failed", [])
    NewDetection = new.get_model("detector", "Detection")
    assert NewDetection.objects.get(pk=judged.pk).model_scores == a.model_scores
    assert NewDetection.objects.get(pk=pending.pk).model_scores == []
