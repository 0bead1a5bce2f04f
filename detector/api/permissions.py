from django.conf import settings
from rest_framework.permissions import BasePermission


class ApiAccess(BasePermission):
    """Token holders and logged-in users; anyone as well where ``DETECTOR_API_ANONYMOUS`` is on."""

    def has_permission(self, request, view):
        return settings.DETECTOR_API_ANONYMOUS or bool(request.user and request.user.is_authenticated)
