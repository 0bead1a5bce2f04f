"""What the API says about detections, uploads, the model and errors (all read-only: uploads are multipart files)."""

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import VERDICT_FIELDS, Detection, Label, Status
from ..services import comparison, sightings


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="Stable and machine-readable, e.g. not_authenticated, not_found, file_too_large, "
        "unsupported_media_type, damaged, too_many_files, rate_limited, detector_unavailable."
    )
    message = serializers.CharField(help_text="What went wrong, in words for people.")
    field = serializers.CharField(allow_null=True, help_text="The request field it concerns (e.g. image), or null.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


def absolute(request, name: str, *args) -> str:
    return request.build_absolute_uri(reverse(name, args=args))


class BoxSerializer(serializers.Serializer):
    x = serializers.IntegerField()
    y = serializers.IntegerField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()


class ModelScoreSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The model's bundle (its folder's name); empty for rows made before 2.8.")
    version = serializers.CharField()
    title = serializers.CharField(help_text="What the model looks for, in words (may be empty).")
    fake_probability = serializers.FloatField(
        allow_null=True, help_text="That model's own calibrated probability (null where no face was found)."
    )
    label = serializers.CharField(
        allow_null=True,
        help_text="That model's own verdict by its own thresholds: Real, Deepfake, Uncertain or No face (null for "
        "an ensemble member judged before labels were stored).",
    )
    ensemble = serializers.BooleanField(
        default=False, help_text="True for the ensemble itself, whose score is the version's; false for its members."
    )


class ImageModelScoreSerializer(ModelScoreSerializer):
    face = serializers.IntegerField(
        allow_null=True, help_text="The number of the face that decided for this model (its most suspicious)."
    )


class VersionFaceScoreSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    label = serializers.CharField(allow_null=True)
    fake_probability = serializers.FloatField(allow_null=True)


class VersionModelSerializer(ImageModelScoreSerializer):
    faces = VersionFaceScoreSerializer(many=True, help_text="This model's score for each face.")


class AnalysisSerializer(serializers.Serializer):
    version = serializers.CharField(help_text="The model version that made this analysis.")
    name = serializers.CharField(help_text="Its bundle's folder name (empty for rows made before 2.8).")
    current = serializers.BooleanField(help_text="Whether this analysis is the upload's verdict.")
    label = serializers.CharField(help_text="That version's verdict.")
    fake_probability = serializers.FloatField(allow_null=True)
    analysed_at = serializers.DateTimeField(allow_null=True)
    models = VersionModelSerializer(many=True, help_text="Every model of that version, side by side.")


class FaceSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="From 1, as on the result page.")
    box = BoxSerializer(help_text="In image pixels.")
    label = serializers.ChoiceField(
        choices=["Real", "Deepfake", "Uncertain"], help_text="This face's own verdict by the model's thresholds."
    )
    fake_probability = serializers.FloatField(help_text="Calibrated probability that this face is fake.")
    models = ModelScoreSerializer(
        many=True,
        help_text="Every model's score for this face, each with its own calibration and thresholds: an ensemble's "
        "members, then the ensemble; a single model alone.",
    )
    crop_url = serializers.URLField()
    heatmap_url = serializers.URLField(help_text="The face with its Grad-CAM heatmap of the fake score (PNG).")


class TrackFrameSerializer(serializers.Serializer):
    seconds = serializers.FloatField(help_text="When, from the start of the video.")
    box = BoxSerializer(help_text="In pixels of the upright frame.")
    fake_probability = serializers.FloatField(help_text="Calibrated probability that the face is fake in this frame.")


class StillSerializer(serializers.Serializer):
    seconds = serializers.FloatField()
    fake_probability = serializers.FloatField()
    image_url = serializers.URLField(help_text="The frame with this face boxed (JPEG, at most 640 px).")
    heatmap_url = serializers.URLField(allow_null=True, help_text="The face with its heatmap of the fake score (PNG).")


class TrackSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="From 1, in order of first appearance, as on the result page.")
    fake_probability = serializers.FloatField(
        help_text="The track's calibrated probability: the mean logit of its most suspicious half of frames."
    )
    label = serializers.ChoiceField(choices=["Real", "Deepfake", "Uncertain"])
    decided = serializers.BooleanField(help_text="Whether this track decided the video's verdict.")
    first_seconds = serializers.FloatField()
    last_seconds = serializers.FloatField()
    frames = TrackFrameSerializer(many=True, help_text="Every sampled frame the face was found in.")
    stills = StillSerializer(many=True, help_text="Its most suspicious frames, most suspicious first.")


class ReviewSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=["real", "fake"], help_text="What the reviewer found the image to be.")
    note = serializers.CharField(allow_blank=True, help_text="The reviewer's note to the owner (may be empty).")
    reviewed_at = serializers.DateTimeField(allow_null=True)


class SightingsSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Earlier checks of the same or a near-identical image, by anyone.")
    first = serializers.DateTimeField(allow_null=True, help_text="When the first of them was made.")
    verdicts = serializers.DictField(child=serializers.IntegerField(), help_text="How many got each verdict.")
    reviews = serializers.DictField(child=serializers.IntegerField(), help_text="How many reviewers marked each way.")


class ImageInfoSerializer(serializers.Serializer):
    format = serializers.CharField(source="image_format", help_text="JPEG, PNG or WEBP, detected from the bytes.")
    content_type = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    size_bytes = serializers.IntegerField()
    sha256 = serializers.CharField()


class LabelField(serializers.ChoiceField):
    """The verdict, or null until the analysis is finished."""

    def to_representation(self, value):
        return value or None


class OptionalUrlField(serializers.URLField):
    """A URL, or null where there is none (never an empty string, which is no URL)."""

    def to_representation(self, value):
        return value or None


class DetectionSerializer(serializers.ModelSerializer):
    def to_representation(self, instance):
        data = super().to_representation(instance)
        if data.get("label") == Label.REAL:  # never a certainty for Real (older rows stored 1 - p)
            data["confidence"] = None
        return data

    url = serializers.SerializerMethodField(help_text="This detection in the API.")
    page = serializers.SerializerMethodField(help_text="Its result page in the browser.")
    file_name = serializers.CharField(source="original_name", help_text="The client's file name, for display.")
    source_url = OptionalUrlField(
        allow_null=True, help_text="For a check by link: the address the server fetched the file from; else null."
    )
    label = LabelField(choices=Label.choices, allow_null=True, help_text="The verdict; null until analysed.")
    faces = serializers.SerializerMethodField()
    tracks = serializers.SerializerMethodField(
        help_text="A video's face tracks (faces followed from frame to frame), each judged; empty for an image."
    )
    review = serializers.SerializerMethodField(
        help_text="Once a reviewer has checked the upload: what they found, beside the model's verdict; null before."
    )
    earlier_sightings = serializers.SerializerMethodField(
        help_text="Whether this image (or a near-identical one) was checked here before: counts only, nothing of "
        "whose checks they were. In the answer for one detection (GET /detections/{id}/); null in lists."
    )
    image = ImageInfoSerializer(source="*")
    models = ImageModelScoreSerializer(
        source="model_scores",
        many=True,
        read_only=True,
        help_text="Every model of the version that gave the verdict, with its own image-level probability and label "
        "(its most suspicious face) and the face that decided for it.",
    )
    analyses = serializers.SerializerMethodField(
        help_text="Every model version that analysed this upload, the verdict's first: compare them side by side."
    )

    class Meta:
        model = Detection
        fields = [
            "id",
            "url",
            "page",
            "file_name",
            "source_url",
            "created_at",
            "kind",
            "duration_seconds",
            "frames_planned",
            *(f for f in VERDICT_FIELDS if f != "model_scores"),
            "models",
            "analyses",
            "review",
            "earlier_sightings",
            "image",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "status": {"help_text": "pending (queued), analysing, then done, or failed (see error_message)."},
            "fake_probability": {
                "help_text": "Calibrated probability that the image is fake (its most suspicious face); null where "
                "no face was found (label No face: nothing was judged) and until analysed."
            },
            "confidence": {
                "help_text": "For Deepfake: the calibrated probability that the label is right. Null for Real (since "
                "API version 1.1: 1 - p claimed a certainty the models do not have on fakes of kinds they never "
                "trained on; see GET /api/v1/model/ for those figures), and for Uncertain and No face, which "
                "claim neither."
            },
            "threshold": {"help_text": "The fake probability from which the model says Deepfake."},
            "face_found": {"help_text": "False where no face was found: the label is then No face."},
            "kind": {"help_text": "image or video (recognised from the file's bytes)."},
            "duration_seconds": {"help_text": "A video's length; null for an image."},
            "frames_planned": {"help_text": "A video: how many frames its analysis looks at; null for an image."},
            "decode_ms": {"help_text": "A video: of processing_ms, what decoding its frames took; null for an image."},
            "frames_sampled": {
                "help_text": "A video: frames analysed so far (progress while analysing, then all); null for an image."
            },
        }

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, detection):
        return absolute(self.context["request"], "api:detection", detection.pk)

    @extend_schema_field(OpenApiTypes.URI)
    def get_page(self, detection):
        return absolute(self.context["request"], "detector:result", detection.pk)

    @extend_schema_field(SightingsSerializer(allow_null=True))
    def get_earlier_sightings(self, detection):
        if not self.context.get("with_sightings"):
            return None
        return SightingsSerializer(vars(sightings.earlier(detection))).data

    @extend_schema_field(ReviewSerializer(allow_null=True))
    def get_review(self, detection):
        outcome = detection.review_outcome
        if outcome is None:
            return None
        return ReviewSerializer(
            {"verdict": outcome["verdict"], "note": outcome["note"], "reviewed_at": outcome["at"]}
        ).data

    @extend_schema_field(AnalysisSerializer(many=True))
    def get_analyses(self, detection):
        return AnalysisSerializer(comparison.versions_of(detection), many=True).data

    @extend_schema_field(TrackSerializer(many=True))
    def get_tracks(self, detection):
        request = self.context["request"]
        tracks = []
        for track in detection.tracks or []:
            stills = [
                {
                    "seconds": still["seconds"],
                    "fake_probability": still["fake_probability"],
                    "image_url": absolute(request, "api:still", detection.pk, track["id"], n, "image"),
                    "heatmap_url": still.get("heatmap")
                    and absolute(request, "api:still", detection.pk, track["id"], n, "heatmap"),
                }
                for n, still in enumerate(track.get("stills", []), start=1)
            ]
            frames = [
                {**f, "box": dict(zip(("x", "y", "width", "height"), f["box"], strict=True))} for f in track["frames"]
            ]
            tracks.append({**track, "frames": frames, "stills": stills})
        return TrackSerializer(tracks, many=True).data

    @extend_schema_field(FaceSerializer(many=True))
    def get_faces(self, detection):
        """The judged faces; none where no face was found (the centre square scored then is no face)."""
        request = self.context["request"]
        faces = []
        for number, face in enumerate(detection.faces or [], start=1):
            box = face.get("box")
            if not box:
                continue
            faces.append(
                {
                    "number": number,
                    "box": dict(zip(("x", "y", "width", "height"), box, strict=True)),
                    "label": detection.face_label(face),
                    "fake_probability": face["fake_probability"],
                    "models": detection.face_models(face),
                    "crop_url": absolute(request, "api:face_image", detection.pk, number, "crop"),
                    "heatmap_url": absolute(request, "api:face_image", detection.pk, number, "heatmap"),
                }
            )
        return FaceSerializer(faces, many=True).data


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": 120, "pattern": "^[^\\x00]*$"})
class NameSearchField(serializers.CharField):
    """Text as written (no trimming); a NUL character is refused, as DRF refuses it in any text."""


class DetectionFilterSerializer(serializers.Serializer):
    """The list's query parameters."""

    label = serializers.ChoiceField(choices=Label.choices, required=False, help_text="Only this verdict.")
    status = serializers.ChoiceField(choices=Status.choices, required=False, help_text="Only this status.")
    created_from = serializers.DateField(required=False, help_text="Made on or after this day (UTC), YYYY-MM-DD.")
    created_to = serializers.DateField(required=False, help_text="Made on or before this day (UTC), YYYY-MM-DD.")
    q = NameSearchField(required=False, max_length=120, trim_whitespace=False, help_text="Part of the file name.")


class UploadSerializer(serializers.Serializer):
    """The upload request, for the schema; each file is checked on its own once the request is read."""

    def get_fields(self):
        # Built per call so that the documented maximum follows the setting.
        most = settings.DETECTOR_BATCH_MAX_FILES
        return {
            "image": serializers.ListField(
                child=serializers.FileField(),
                min_length=1,
                max_length=most,
                required=False,
                help_text=f"One to {most} JPEG, PNG, WebP, HEIC or AVIF images (repeat the field for each), "
                f"each up to {settings.DETECTOR_MAX_UPLOAD_MB:g} MB.",
            ),
            "url": serializers.URLField(
                required=False,
                max_length=2000,
                help_text="Instead of files: a link to one image or video file, which the server fetches "
                "(where DETECTOR_FETCH_URLS is on).",
            ),
        }


class LinkUploadSerializer(serializers.Serializer):
    """A check by link, as JSON."""

    url = serializers.URLField(
        max_length=2000,
        help_text="An http(s) link to an image or a video file (not a page); the server fetches it (at most 3 "
        "redirects, 10 seconds, the upload size limits) where DETECTOR_FETCH_URLS is on.",
    )


class UploadResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The file's position in the request, from 0.")
    file_name = serializers.CharField()
    detection = DetectionSerializer(allow_null=True, help_text="Its detection; null where the file was refused.")
    error = ErrorDetailSerializer(allow_null=True, help_text="Why the file was refused; null where it was accepted.")


class UploadResponseSerializer(serializers.Serializer):
    results = UploadResultSerializer(many=True, help_text="One entry per file, in the order they were sent.")


class UploadErrorSerializer(ErrorSerializer):
    results = UploadResultSerializer(
        many=True, required=False, help_text="Where files were read: each one's reason, in the order they were sent."
    )


@extend_schema_field({"type": "number", "nullable": True})
class NumberField(serializers.ReadOnlyField):
    pass


class ThresholdsSerializer(serializers.Serializer):
    deepfake_from = serializers.FloatField(help_text="Deepfake at or above this fake probability.")
    real_below = serializers.FloatField(help_text="Real below this; Uncertain in between.")
    decision = serializers.FloatField(help_text="The threshold chosen on the validation split.")


class TrainingSummarySerializer(serializers.Serializer):
    dataset = serializers.CharField(allow_null=True)
    train_images = serializers.IntegerField(allow_null=True, help_text="Null for an ensemble: see its members.")
    val_images = serializers.IntegerField(allow_null=True)
    train_by_source = serializers.DictField(child=serializers.IntegerField(), allow_null=True)
    chosen = serializers.CharField(allow_null=True, help_text="The epoch that was kept.")
    finished = serializers.CharField(allow_null=True, help_text="When training finished.")
    val_auc = serializers.FloatField(allow_null=True)
    threshold_rule = serializers.CharField(source="calibration.threshold_rule", allow_null=True)


class TestMetricsSerializer(serializers.Serializer):
    overall = serializers.DictField(child=NumberField(), help_text="n, auc, detection_rate, false_accusation_rate…")
    by_source = serializers.DictField(child=serializers.DictField(child=NumberField()))


class MemberSerializer(serializers.Serializer):
    bundle = serializers.CharField(help_text="The member's bundle folder, a model version of its own.")
    version = serializers.CharField()
    title = serializers.CharField()
    weight = serializers.FloatField(help_text="Its weight in the ensemble's combination of the members' logits.")
    train_images = serializers.IntegerField(source="images", allow_null=True)


class ModelInfoSerializer(serializers.Serializer):
    name = serializers.CharField(source="meta.name")
    version = serializers.CharField(source="meta.version", help_text="The version new verdicts carry.")
    loaded = serializers.BooleanField(help_text="Whether this server process has the model loaded.")
    input_size = serializers.IntegerField(source="meta.input_size", help_text="Side of the face crop, in pixels.")
    thresholds = ThresholdsSerializer(source="meta.thresholds")
    training = TrainingSummarySerializer(source="meta.training", help_text="From the model card's training record.")
    test_metrics = TestMetricsSerializer(
        source="metrics", allow_null=True, help_text="Measured on the held-out test split; null where not shipped."
    )
    members = MemberSerializer(
        source="trained.models", many=True, help_text="An ensemble's models, each scoring every face; empty otherwise."
    )


class WebhookAttemptSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    ok = serializers.BooleanField(help_text="Whether the endpoint answered 2xx.")
    status_code = serializers.IntegerField(allow_null=True, help_text="Its HTTP status; null where none came.")
    error = serializers.CharField(help_text="Why the attempt failed (no answer in time, a refused address, ...).")
    duration_ms = serializers.IntegerField()


class WebhookDeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event = serializers.ChoiceField(choices=["detection.done", "detection.failed"])
    detection = serializers.UUIDField(source="detection_id")
    status = serializers.ChoiceField(
        choices=["pending", "delivered", "abandoned"],
        help_text="pending: sent again at next_attempt_at; delivered; abandoned: the endpoint was disabled.",
    )
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)
    attempt_log = WebhookAttemptSerializer(many=True, help_text="Every attempt, the latest first.")


class WebhookSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    created_at = serializers.DateTimeField()
    active = serializers.BooleanField(help_text="False once it failed for a day and was disabled.")
    failing_since = serializers.DateTimeField(allow_null=True, help_text="The first failure since the last success.")
    disabled_reason = serializers.CharField()
    deliveries = serializers.SerializerMethodField(help_text="Its latest 20 deliveries, the latest first.")

    def get_deliveries(self, webhook) -> list[dict]:
        recent = webhook.deliveries.prefetch_related("attempt_log").order_by("-created_at", "-id")[:20]
        return WebhookDeliverySerializer(recent, many=True).data


class WebhookListSerializer(serializers.Serializer):
    results = WebhookSerializer(many=True, help_text="Your callbacks, the newest first.")


class WebhookCreateSerializer(serializers.Serializer):
    url = serializers.URLField(
        max_length=2000,
        help_text="An https address (no private, loopback or link-local one) that takes POSTs of JSON events.",
    )


class WebhookCreatedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    secret = serializers.CharField(
        help_text="The signing secret: shown this once. Check X-Signature (t=<unix seconds>,v1=<hex HMAC-SHA256 "
        "keyed with this secret's UTF-8 bytes, of the bytes '<t>.<body>'>) on every event."
    )
