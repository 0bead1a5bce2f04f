"""API keys people make themselves: several per user, named, shown once, kept as a SHA-256 hash, revocable.

A key is ``dfc_`` followed by 40 random URL-safe characters; its first 12 characters (the prefix) find its row,
and the hash of the whole key is compared in constant time. Older single tokens (DRF's authtoken, made by an
administrator before these existed) keep working beside them (``api.authentication``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.utils import timezone

from ..models import ApiToken

KEY_START = "dfc_"
PREFIX_LENGTH = 12
# last_used_at is written at most this often per key: a script's every request need not be a write.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(user, name: str) -> tuple[ApiToken, str]:
    """A new key for ``user``: its row, and the key itself, which is never stored and cannot be shown again."""
    key = KEY_START + secrets.token_urlsafe(30)
    token = ApiToken.objects.create(
        user=user, name=name.strip() or "API key", prefix=key[:PREFIX_LENGTH], key_hash=_hash(key)
    )
    return token, key


def authenticate(key: str) -> ApiToken | None:
    """The live key this is, with its user; None where it is no such key, or revoked, or its user is inactive."""
    if not key.startswith(KEY_START) or len(key) < PREFIX_LENGTH:
        return None
    token = ApiToken.objects.select_related("user").filter(prefix=key[:PREFIX_LENGTH], revoked_at=None).first()
    if token is None or not hmac.compare_digest(token.key_hash, _hash(key)) or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def revoke(user, pk: int) -> bool:
    """Stop one of ``user``'s keys working; False where they have no such live key."""
    return bool(ApiToken.objects.filter(user=user, pk=pk, revoked_at=None).update(revoked_at=timezone.now()))


def live(user):
    return ApiToken.objects.filter(user=user, revoked_at=None)
