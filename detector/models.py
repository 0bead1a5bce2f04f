import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse

from .ml.labels import LABEL_FAKE, LABEL_NO_FACE, LABEL_REAL, LABEL_UNCERTAIN


class Status(models.TextChoices):
    PENDING = "pending", "Queued"  # stored, waiting for an analysis worker
    ANALYSING = "analysing", "Analysing"  # a worker has taken it
    DONE = "done", "Done"
    FAILED = "failed", "Failed"

    @classmethod
    def unfinished(cls) -> tuple[str, str]:
        return (cls.PENDING, cls.ANALYSING)


class Label(models.TextChoices):
    REAL = LABEL_REAL, "Real"
    DEEPFAKE = LABEL_FAKE, "Deepfake"
    UNCERTAIN = LABEL_UNCERTAIN, "Uncertain"
    NO_FACE = LABEL_NO_FACE, "No face"  # nothing was judged: the detector judges faces only
    NO_VERDICT = "No verdict", "No verdict"  # the analysis failed


# One look per verdict, the same on every page: the CSS class that carries its colour and mark.
VERDICT_STYLES = {
    Label.REAL: "real",
    Label.DEEPFAKE: "deepfake",
    Label.UNCERTAIN: "uncertain",
    Label.NO_FACE: "no-face",
    Label.NO_VERDICT: "failed",
}


def verdict_style(label: str) -> str:
    """The CSS class suffix of a verdict (``badge-…``, ``verdict-…``, ``face-…``); ``waiting`` before one."""
    return VERDICT_STYLES.get(label, "waiting")


def percent_text(p: float | None) -> str:
    """A probability for people: whole percents, and never 0 % or 100 %, which the model never is."""
    if p is None:
        return "—"
    if p < 0.01:
        return "< 1 %"
    if p > 0.99:
        return "> 99 %"
    return f"{round(p * 100)} %"


class Kind(models.TextChoices):
    IMAGE = "image", "Image"
    VIDEO = "video", "Video"


class ReviewVerdict(models.TextChoices):
    REAL = "real", "Reviewed: real"
    FAKE = "fake", "Reviewed: fake"


ANONYMOUS_OWNER_KEY = "detector_owner"


# What an analysis records on a Detection: the admin shows these together, the API returns them.
VERDICT_FIELDS = (
    "status",
    "label",
    "fake_probability",
    "confidence",
    "threshold",
    "real_below",
    "model_version",
    "face_found",
    "faces",
    "frames_sampled",
    "tracks",
    "model_scores",
    "provenance",
    "model_label",
    "verdict_reason",
    "processing_ms",
    "decode_ms",
    "error_message",
)
# What a reviewer records.
REVIEW_FIELDS = ("review_verdict", "review_note", "reviewed_by", "reviewed_at")


def reading_order(faces: list[tuple[int, dict]]) -> list[tuple[int, dict]]:
    """Faces (each ``(index, face)`` with a ``box``) as one reads them: rows top to bottom, each left to right.

    A face starts a new row where its centre is lower than the current row's by more than half the median face
    height: faces side by side in a group photo share a row though their heights differ."""
    if not faces:
        return []
    heights = sorted(f["box"][3] for _, f in faces)
    tolerance = heights[len(heights) // 2] / 2
    by_centre = sorted(faces, key=lambda item: item[1]["box"][1] + item[1]["box"][3] / 2)
    rows, row_centre = [], None
    for item in by_centre:
        centre = item[1]["box"][1] + item[1]["box"][3] / 2
        if row_centre is None or centre - row_centre > tolerance:
            rows.append([])
            row_centre = centre
        rows[-1].append(item)
    return [item for row in rows for item in sorted(row, key=lambda it: it[1]["box"][0])]


def number_badge_boxes(faces: list[dict], scale: float, width: int, height: int, side: float) -> list[tuple]:
    """Where each face's number goes on a picture ``width`` x ``height`` (image pixels times ``scale``): a square of
    ``side`` in the box's top-left corner, inside the picture, moved down past any badge already placed that it
    would cover. Returns (x0, y0, x1, y1) per face, in ``faces``' order."""
    placed = []
    for face in faces:
        x0 = min(max(0.0, face["x"] * scale), width - side)
        y0 = min(max(0.0, face["y"] * scale), height - side)
        while any(x0 < b[2] and b[0] < x0 + side and y0 < b[3] and b[1] < y0 + side for b in placed):
            y0 += side
            if y0 + side > height:  # no room below: the next free place to the right, from the top
                y0, x0 = 0.0, min(x0 + side, width - side)
        placed.append((x0, y0, x0 + side, y0 + side))
    return placed


class DetectionQuerySet(models.QuerySet):
    def owned_by(self, request):
        """The detections of the request's user, or of its anonymous session."""
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return self.filter(owner=user)
        token = request.session.get(ANONYMOUS_OWNER_KEY)
        if not token:
            return self.none()
        return self.filter(owner__isnull=True, anonymous_owner=token)

    def hand_over(self, token: str, user):
        """Give an anonymous visitor's detections to the account they signed up or logged in with."""
        return self.filter(owner__isnull=True, anonymous_owner=token).update(owner=user, anonymous_owner="")

    def recent(self):
        return self.order_by("-created_at")

    def with_label(self, label):
        return self.filter(label=label) if label else self

    def with_status(self, status):
        return self.filter(status=status) if status else self

    def created_between(self, start=None, end=None):
        qs = self
        if start:
            qs = qs.filter(created_at__date__gte=start)
        if end:
            qs = qs.filter(created_at__date__lte=end)
        return qs

    def search(self, text):
        return self.filter(original_name__icontains=text) if text else self


def upload_path(instance, filename):
    return f"uploads/{filename}"


class Detection(models.Model):
    """One uploaded image and the detector's verdict on it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    image = models.FileField(upload_to=upload_path, max_length=200)
    preview = models.FileField(upload_to="previews/", max_length=200, blank=True)
    thumbnail = models.FileField(upload_to="thumbnails/", max_length=200, blank=True)
    original_name = models.CharField(max_length=120, blank=True, help_text="The client's file name, for display only.")
    source_url = models.URLField(
        max_length=2000, blank=True, help_text="Where the server fetched the file from, for a check by link."
    )
    sha256 = models.CharField(max_length=64, db_index=True)
    phash = models.CharField(
        "perceptual hash", max_length=16, blank=True, db_index=True, help_text="64-bit pHash (imagehash), in hex."
    )
    image_format = models.CharField("format", max_length=10)
    content_type = models.CharField(max_length=40)
    size_bytes = models.PositiveBigIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    kind = models.CharField(max_length=5, choices=Kind.choices, default=Kind.IMAGE, db_index=True)
    duration_seconds = models.FloatField(null=True, blank=True, help_text="A video's length.")
    # A video's analysis, as it goes: frames analysed of frames planned, and when that last moved (a video whose
    # progress moved recently is being analysed, and nothing queues it again).
    frames_planned = models.PositiveIntegerField(null=True, blank=True)
    frames_sampled = models.PositiveIntegerField(null=True, blank=True)
    decode_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Of a video's processing time, what decoding its frames took."
    )
    progress_at = models.DateTimeField(null=True, blank=True)
    # A video's face tracks: [{id, fake_probability, label, first_seconds, last_seconds, frames: [{seconds, box,
    # fake_probability}], stills: [{seconds, fake_probability, image, heatmap}]}] (ml.inference.video).
    tracks = models.JSONField(default=list, blank=True)
    # Each model's image-level score in the version that judged it (Analysis.model_scores; the API's ``models``).
    model_scores = models.JSONField(default=list, blank=True)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    # Analyses started: a job redelivered after a worker died counts again; past the limit it fails, not loops.
    attempts = models.PositiveSmallIntegerField(default=0)
    label = models.CharField(max_length=12, choices=Label.choices, blank=True, db_index=True)
    fake_probability = models.FloatField(null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True, help_text="Deepfake from this fake probability.")
    real_below = models.FloatField(null=True, blank=True, help_text="Real below this fake probability.")
    model_version = models.CharField(max_length=40, blank=True, db_index=True)
    faces = models.JSONField(default=list, blank=True)
    # What the file says of its origin (detector.provenance), and how the rule weighed it against the model.
    provenance = models.JSONField(default=list, blank=True)
    model_label = models.CharField(
        max_length=12, blank=True, help_text="The model's own verdict, where provenance changed the label."
    )
    verdict_reason = models.TextField(blank=True, help_text="Why the verdict differs from the model's, or a warning.")
    face_found = models.BooleanField(null=True)
    processing_ms = models.PositiveIntegerField(null=True, blank=True)
    analysed_at = models.DateTimeField(null=True, blank=True, help_text="When the verdict shown was made.")
    # A random key that the owner's read-only share link signs; emptied to revoke every link.
    share_key = models.CharField(max_length=32, blank=True, editable=False)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="detections"
    )
    anonymous_owner = models.CharField(
        max_length=40, blank=True, db_index=True, help_text="For anonymous uploads: a random token kept in the session."
    )

    review_verdict = models.CharField(max_length=10, choices=ReviewVerdict.choices, blank=True, db_index=True)
    review_note = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="reviewed_detections"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    objects = DetectionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["anonymous_owner", "-created_at"]),
        ]

    def __str__(self):
        return f"{self.original_name or self.id} ({self.label or self.status})"

    @property
    def is_video(self) -> bool:
        return self.kind == Kind.VIDEO

    @property
    def progress_percent(self) -> int | None:
        """How much of a video's analysis is done, in percent; None before it is planned."""
        if not self.frames_planned:
            return None
        return min(100, round(100 * (self.frames_sampled or 0) / self.frames_planned))

    def get_absolute_url(self):
        return reverse("detector:result", args=[self.id])

    @property
    def fake_percent(self):
        return None if self.fake_probability is None else round(self.fake_probability * 100)

    @property
    def fake_text(self) -> str:
        """The fake probability for people ("< 1 %" … "> 99 %"); "—" where there is none."""
        return percent_text(self.fake_probability)

    @property
    def style(self) -> str:
        """The verdict's look (:data:`VERDICT_STYLES`), or ``waiting`` while it is queued or analysed."""
        return verdict_style(self.label) if self.status not in Status.unfinished() else "waiting"

    @property
    def is_judged(self) -> bool:
        """Whether the model gave a verdict on a face (Real, Deepfake or Uncertain)."""
        return (
            self.status == Status.DONE
            and self.label in (Label.REAL, Label.DEEPFAKE, Label.UNCERTAIN)
            and self.fake_probability is not None
        )

    @property
    def provenance_findings(self) -> list[dict]:
        """The file's provenance findings with their strength in words, strongest first, for the pages."""
        from .provenance import STRENGTH_WORDS

        return [{**f, "strength_text": STRENGTH_WORDS.get(f.get("strength"), "")} for f in self.provenance or []]

    @property
    def centre_score(self) -> float | None:
        """For a detection without a face: the centre square's score, for reviewers only (it is no verdict)."""
        if self.label != Label.NO_FACE:
            return None
        centre = next((f for f in self.faces or [] if not f.get("box")), None)
        return centre and centre.get("fake_probability")

    @property
    def review_outcome(self) -> dict | None:
        """What a reviewer found, for its owner: the outcome and the note, never who reviewed."""
        if not self.review_verdict:
            return None
        verdict = ReviewVerdict(self.review_verdict)
        return {"verdict": verdict.value, "text": verdict.label, "note": self.review_note, "at": self.reviewed_at}

    def face_label(self, face: dict) -> str:
        """A face's own verdict: stored with it since the No face release; for older rows, told from the scores."""
        if face.get("label"):
            return face["label"]
        if not face.get("box"):
            return Label.NO_FACE
        if len(self.faces) == 1 and self.label in (Label.REAL, Label.DEEPFAKE, Label.UNCERTAIN):
            return self.label
        return Label.DEEPFAKE if face["fake_probability"] >= (self.threshold or 0.5) else Label.UNCERTAIN

    def face_models(self, face: dict) -> list[dict]:
        """Every model's score for a face, as the analysis stored it: ``[{name, version, title, fake_probability,
        label}]``, an ensemble's members then the ensemble (``ensemble``). Rows made before every model's label was
        stored get the version's own score, and an older ensemble's members theirs, without a label."""
        if face.get("models"):
            return face["models"]
        own = {
            "name": "",
            "version": self.model_version,
            "title": "",
            "fake_probability": face["fake_probability"],
            "label": self.face_label(face),
        }
        members = [
            {
                "name": s.get("model", ""),
                "version": s.get("version", ""),
                "title": s.get("title", ""),
                "fake_probability": s["fake_probability"],
                "label": None,
            }
            for s in face.get("scores", [])
        ]
        return [*members, {**own, "ensemble": True}] if members else [own]

    def face_boxes(self):
        """The judged faces in reading order, with their boxes in image pixels (and in percent of the image, for the
        overlay), each one's own verdict and score; ``decided``: the most suspicious face, whose score is the
        image's. A detection without a face has none (its centre square is no face).

        ``number`` is what every page, the shared report and the PDF call a face: left to right, top to bottom.
        ``index`` is its place in the stored order (largest first), which the face pictures' addresses use."""
        judged = [(n, f) for n, f in enumerate(self.faces or [], start=1) if f.get("box")]
        top = max((f["fake_probability"] for _, f in judged), default=None)
        ordered = reading_order(judged)
        # Where each number is drawn on the image (image pixels): the pages move it to a readable size on screen.
        side = max(18.0, min(self.width or 1, self.height or 1) / 18)
        badges = number_badge_boxes(
            [{"x": f["box"][0], "y": f["box"][1]} for _, f in ordered], 1.0, self.width or 1, self.height or 1, side
        )
        out = []
        for number, ((index, face), badge) in enumerate(zip(ordered, badges, strict=True), start=1):
            x, y, w, h = face["box"]
            label = self.face_label(face)
            out.append(
                {
                    "number": number,
                    "index": index,
                    "badge": {
                        "x": badge[0],
                        "y": badge[1],
                        "side": side,
                        "cx": badge[0] + side / 2,
                        "cy": badge[1] + side / 2,
                    },
                    "x": x,
                    "y": y,
                    "w": w,
                    "h": h,
                    "left": 100 * x / self.width,
                    "top": 100 * y / self.height,
                    "width": 100 * w / self.width,
                    "height": 100 * h / self.height,
                    "label": label,
                    "style": verdict_style(label),
                    "fake_text": percent_text(face["fake_probability"]),
                    "decided": len(judged) > 1 and face["fake_probability"] == top,
                    "models": [
                        {
                            **m,
                            "fake_text": percent_text(m["fake_probability"]),
                            "style": verdict_style(m["label"]) if m.get("label") else "waiting",
                        }
                        for m in self.face_models(face)
                    ],
                }
            )
        return out


# What one model version's analysis records: the verdict's fields, less what the file itself says (provenance,
# the same for every version), and when it was made.
ANALYSIS_FIELDS = (*(f for f in VERDICT_FIELDS if f != "provenance"), "analysed_at")


class AnalysisQuerySet(models.QuerySet):
    def by_version(self, version: str):
        return self.filter(model_version=version)


class Analysis(models.Model):
    """One model version's analysis of an upload: its verdict and every model's score for each face.

    An upload has one per version that scored it (never two by the same version); its verdict, the
    fields of the same names on :class:`Detection`, is its analysis by the active version, or its
    latest where the active version has not scored it (see :mod:`detector.services.analysis`).
    """

    detection = models.ForeignKey("Detection", on_delete=models.CASCADE, related_name="analyses")
    model_name = models.CharField(max_length=100, blank=True, help_text="The bundle folder's name.")
    model_version = models.CharField(max_length=40, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DONE)
    label = models.CharField(max_length=12, choices=Label.choices, blank=True)
    fake_probability = models.FloatField(null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    real_below = models.FloatField(null=True, blank=True)
    face_found = models.BooleanField(null=True)
    faces = models.JSONField(default=list, blank=True)
    frames_sampled = models.PositiveIntegerField(null=True, blank=True)
    tracks = models.JSONField(default=list, blank=True)
    # Each model's image-level score in this version (the ensemble's members and the ensemble; or the one model):
    # [{name, version, title, fake_probability, label, face}] (``face``: the number of the face that decided).
    model_scores = models.JSONField(default=list, blank=True)
    model_label = models.CharField(max_length=12, blank=True)
    verdict_reason = models.TextField(blank=True)
    processing_ms = models.PositiveIntegerField(null=True, blank=True)
    decode_ms = models.PositiveIntegerField(null=True, blank=True)
    error_message = models.TextField(blank=True)
    analysed_at = models.DateTimeField(null=True, blank=True)

    objects = AnalysisQuerySet.as_manager()

    class Meta:
        ordering = ["-analysed_at", "-id"]
        verbose_name_plural = "analyses"
        constraints = [
            models.UniqueConstraint(fields=["detection", "model_version"], name="one_analysis_per_version"),
        ]

    def __str__(self) -> str:
        return f"{self.model_version}: {self.label or self.status}"

    @property
    def fake_text(self) -> str:
        return percent_text(self.fake_probability)

    @property
    def style(self) -> str:
        return verdict_style(self.label)


class ModelActivation(models.Model):
    """Which model version serves: the newest row's bundle (with no row, ``DETECTOR_MODEL``).

    Rows are never changed: they are the history of what served when, and rolling back is activating an
    earlier version again (a new row). See :mod:`detector.services.registry`.
    """

    bundle = models.CharField(max_length=500, help_text="The bundle folder's path on the servers.")
    name = models.CharField(max_length=100, help_text="The bundle folder's name.")
    version = models.CharField(max_length=40)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    activated_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-activated_at", "-id"]
        verbose_name = "model version activation"

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


class Reanalysis(models.Model):
    """Past uploads queued for analysis by one model version (``reanalyse``, or the admin's action), and how far
    it has gone. An upload that version has analysed already is not queued again."""

    bundle = models.CharField(max_length=500, help_text="The bundle folder's path on the servers.")
    name = models.CharField(max_length=100, help_text="The bundle folder's name.")
    version = models.CharField(max_length=40)
    criteria = models.CharField(max_length=300, blank=True, help_text="Which uploads were chosen, in words.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True, db_index=True)
    total = models.PositiveIntegerField(default=0, help_text="Uploads queued.")
    analysed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0, help_text="Uploads that could not be analysed (kept as they were).")
    skipped = models.PositiveIntegerField(
        default=0, help_text="Uploads deleted meanwhile, or analysed by this version by then."
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name_plural = "re-analyses"
        verbose_name = "re-analysis"

    def __str__(self) -> str:
        return f"{self.name} {self.version}: {self.handled} of {self.total}"

    @property
    def handled(self) -> int:
        return self.analysed + self.failed + self.skipped

    @property
    def progress_percent(self) -> int:
        return 100 if not self.total else min(100, round(100 * self.handled / self.total))


class ApiToken(models.Model):
    """A key someone made for their scripts (``/accounts/tokens/``): named, one of several, kept only as a hash, so
    it is shown once, when it is made. ``Authorization: Token <key>``; see ``api.authentication``."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=12, unique=True, help_text="The key's first characters, to find and show it.")
    key_hash = models.CharField(max_length=64, help_text="SHA-256 of the whole key.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class Webhook(models.Model):
    """A callback address someone registered: each of their checks that ends is POSTed to it, signed."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2000)
    secret_encrypted = models.TextField(help_text="The signing secret, encrypted with a key derived from SECRET_KEY.")
    created_at = models.DateTimeField(auto_now_add=True)
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="The first failed attempt since the last success."
    )
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url

    @property
    def active(self) -> bool:
        return self.disabled_at is None


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Waiting"  # due now or later, retried with backoff
    DELIVERED = "delivered", "Delivered"
    ABANDONED = "abandoned", "Given up"  # the endpoint was disabled after failing for a day


class WebhookDelivery(models.Model):
    """One event for one endpoint, kept as a row that the periodic sender claims once per attempt: a retry due in
    hours is not left in the broker (which would hand it out twice past its redelivery window)."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    # A check deleted before its delivery is sent takes the delivery with it: nothing is sent about it.
    detection = models.ForeignKey(Detection, on_delete=models.CASCADE, related_name="+")
    event = models.CharField(max_length=30)
    body = models.TextField(help_text="The JSON sent, as it was when the analysis ended.")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} {self.detection_id} -> {self.webhook.url} ({self.status})"


class WebhookAttempt(models.Model):
    """One try of a delivery: when, what came back."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    ok = models.BooleanField(default=False)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at", "-id"]
