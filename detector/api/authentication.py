"""``Authorization: Token <key>``: a key its owner made (``services.tokens``), or an older single token (DRF's)."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from ..services import tokens


class ApiTokenAuthentication(TokenAuthentication):
    """The keys people make on ``/accounts/tokens/`` first; a key that is not one is tried as DRF's token."""

    def authenticate_credentials(self, key):
        if key.startswith(tokens.KEY_START):
            token = tokens.authenticate(key)
            if token is None:
                raise exceptions.AuthenticationFailed("Invalid or revoked token.")
            return token.user, token
        return super().authenticate_credentials(key)
