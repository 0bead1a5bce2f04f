"""Callbacks: when one of a user's checks ends, a signed JSON event is POSTed to each endpoint they registered.

Registering gives a secret, shown once and kept encrypted (a key derived from ``SECRET_KEY``), with which every
body is signed as Stripe signs its events: ``X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``.
An event is a database row (:class:`~detector.models.WebhookDelivery`) made in the transaction that records the
verdict; a periodic job (Celery beat, or this process's pool without a broker) sends what is due, claiming each
row once per attempt, so a retry hours away never sits in the broker. A failed attempt is tried again after 1, 2,
4 ... minutes (at most 6 hours apart); an endpoint that has failed for ``DETECTOR_WEBHOOK_DISABLE_AFTER_HOURS``
is disabled, its waiting events given up, and its owner told on their account page. A check deleted before its
event goes takes the event with it. Addresses are checked when registered and again, after name resolution,
at every attempt (:mod:`.outbound`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from ..models import DeliveryStatus, Detection, Status, Webhook, WebhookAttempt, WebhookDelivery
from . import outbound

log = logging.getLogger(__name__)
EVENTS = {Status.DONE: "detection.done", Status.FAILED: "detection.failed"}
LEASE = timedelta(minutes=2)  # a claimed attempt not finished by then (its worker died) is due again
MAX_BACKOFF = timedelta(hours=6)
ANSWER_LIMIT = 64 * 1024  # what an endpoint's answer may hold (it is read, never kept)


class TooManyWebhooks(Exception):
    pass


def _fernet():
    from cryptography.fernet import Fernet

    key = hashlib.sha256(b"deepfake-check webhook secrets|" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def secret_of(webhook: Webhook) -> str:
    return _fernet().decrypt(webhook.secret_encrypted.encode()).decode()


def register(user, url: str) -> tuple[Webhook, str]:
    """A new endpoint for ``user``, and its secret (shown once). Raises outbound.UrlRefused (with the reason)
    where the address may not be called, TooManyWebhooks past ``DETECTOR_WEBHOOKS_PER_USER``."""
    target = outbound.check_url(url)
    if Webhook.objects.filter(user=user, disabled_at=None).count() >= settings.DETECTOR_WEBHOOKS_PER_USER:
        raise TooManyWebhooks(f"at most {settings.DETECTOR_WEBHOOKS_PER_USER} callback addresses per account")
    secret = "whsec_" + secrets.token_urlsafe(24)
    webhook = Webhook.objects.create(
        user=user, url=target.url, secret_encrypted=_fernet().encrypt(secret.encode()).decode()
    )
    return webhook, secret


def remove(user, pk: int) -> bool:
    return bool(Webhook.objects.filter(user=user, pk=pk).delete()[0])


def signature(secret: str, body: bytes, at: int | None = None) -> str:
    """The ``X-Signature`` header's value for ``body`` sent at ``at`` (unix seconds)."""
    at = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def detection_url(detection: Detection) -> str:
    path = reverse("api:detection", args=[detection.pk])
    return settings.DETECTOR_PUBLIC_URL.rstrip("/") + path if settings.DETECTOR_PUBLIC_URL else path


def event_body(detection: Detection, event: str) -> str:
    return json.dumps(
        {
            "event": event,
            "created": timezone.now().isoformat(timespec="seconds"),
            "detection": {
                "id": str(detection.pk),
                "url": detection_url(detection),
                "status": detection.status,
                "kind": detection.kind,
                "label": detection.label,
                "fake_probability": detection.fake_probability,
                "model_version": detection.model_version,
            },
        },
        separators=(",", ":"),
    )


def enqueue(detection: Detection) -> int:
    """An event for every live endpoint of the check's owner, now that its analysis ended (done or failed; by the
    serving version or a re-analysis); in the caller's transaction. Returns how many."""
    event = EVENTS.get(detection.status)
    if event is None or detection.owner_id is None:
        return 0
    hooks = list(Webhook.objects.filter(user_id=detection.owner_id, disabled_at=None).only("pk"))
    if not hooks:
        return 0
    body, now = event_body(detection, event), timezone.now()
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(webhook=h, detection_id=detection.pk, event=event, body=body, next_attempt_at=now)
        for h in hooks
    )
    return len(hooks)


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: 1, 2, 4 ... minutes, at most ``MAX_BACKOFF``."""
    return min(timedelta(minutes=2 ** max(0, attempts - 1)), MAX_BACKOFF)


def due():
    now = timezone.now()
    return WebhookDelivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lte=now, webhook__disabled_at=None
    ).filter(Q(claimed_until=None) | Q(claimed_until__lt=now))


def claim(pk: int) -> WebhookDelivery | None:
    """Take one due delivery for one attempt (one conditional UPDATE); None where someone else has it, or it is
    gone (its check deleted), delivered or given up."""
    now = timezone.now()
    taken = due().filter(pk=pk).update(claimed_until=now + LEASE, attempts=F("attempts") + 1)
    if not taken:
        return None
    return WebhookDelivery.objects.select_related("webhook").filter(pk=pk).first()


def send_due(limit: int = 100) -> dict:
    """Send what is due now, each delivery claimed once; returns the counts."""
    counts = {"delivered": 0, "failed": 0, "disabled": 0}
    for pk in list(due().order_by("next_attempt_at").values_list("pk", flat=True)[:limit]):
        delivery = claim(pk)
        if delivery is None:
            continue
        outcome = attempt(delivery)
        counts[outcome] += 1
    if any(counts.values()):
        log.info("webhooks: %s", counts)
    return counts


def attempt(delivery: WebhookDelivery) -> str:
    """POST one delivery; record the attempt; ``delivered``, ``failed`` (tried again later) or ``disabled``."""
    webhook = delivery.webhook
    body = delivery.body.encode()
    started = time.perf_counter()
    status_code, error = None, ""
    try:
        headers = {
            "Content-Type": "application/json",
            "X-Signature": signature(secret_of(webhook), body),
            "X-Webhook-Delivery": str(delivery.pk),
            "X-Webhook-Event": delivery.event,
        }
        answer = outbound.request(
            "POST",
            webhook.url,
            body=body,
            headers=headers,
            timeout=settings.DETECTOR_WEBHOOK_TIMEOUT,
            max_bytes=ANSWER_LIMIT,
            follow_redirects=False,
        )
        status_code = answer.status
        if not 200 <= answer.status < 300:
            error = f"answered {answer.status}"
    except (outbound.UrlRefused, outbound.FetchFailed) as exc:
        error = str(exc)
    except Exception as exc:  # a secret that cannot be decrypted (SECRET_KEY changed), or worse: logged, retried
        log.exception("webhook delivery %s", delivery.pk)
        error = f"could not be sent ({type(exc).__name__})"
    ok = not error
    duration = round((time.perf_counter() - started) * 1000)
    now = timezone.now()
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery, status_code=status_code, error=error[:300], ok=ok, duration_ms=duration
        )
        if ok:
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                status=DeliveryStatus.DELIVERED, delivered_at=now, claimed_until=None
            )
            Webhook.objects.filter(pk=webhook.pk).update(failing_since=None)
            return "delivered"
        failing_since = webhook.failing_since or now
        if now - failing_since >= timedelta(hours=settings.DETECTOR_WEBHOOK_DISABLE_AFTER_HOURS):
            reason = (
                f"Disabled {now:%Y-%m-%d %H:%M} UTC: every attempt since {failing_since:%Y-%m-%d %H:%M} UTC failed "
                f"(the last: {error})."
            )
            Webhook.objects.filter(pk=webhook.pk).update(disabled_at=now, disabled_reason=reason[:300])
            WebhookDelivery.objects.filter(webhook=webhook, status=DeliveryStatus.PENDING).update(
                status=DeliveryStatus.ABANDONED, claimed_until=None
            )
            log.warning("webhook %s disabled: %s", webhook.pk, reason)
            return "disabled"
        Webhook.objects.filter(pk=webhook.pk, failing_since=None).update(failing_since=failing_since)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=now + backoff(delivery.attempts), claimed_until=None
        )
        return "failed"


def has_due() -> bool:
    return due().exists()
