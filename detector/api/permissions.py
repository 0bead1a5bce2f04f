from django.conf import settings
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission


class ApiAccess(BasePermission):
    """Token holders and logged-in users; anyone as well where ``DETECTOR_API_ANONYMOUS`` is on.

    An anonymous client owns its uploads through its session cookie, which a browser sends along with a request
    that another site makes it send; so a change by an anonymous client needs the CSRF token, as a logged-in
    user's does (DRF checks that one itself), and a forged upload cannot plant a file in someone's session.
    """

    def has_permission(self, request, view):
        if request.user and request.user.is_authenticated:
            return True
        if not settings.DETECTOR_API_ANONYMOUS:
            return False
        if request.method not in SAFE_METHODS:
            SessionAuthentication().enforce_csrf(request)  # raises PermissionDenied (403) without a valid token
        return True
