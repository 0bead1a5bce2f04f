from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from .models import ANONYMOUS_OWNER_KEY, Detection


@receiver(user_logged_in)
def hand_over_anonymous_detections(sender, request, user, **kwargs):
    """Checks made before logging in (or signing up) in this session move to the account."""
    token = request.session.pop(ANONYMOUS_OWNER_KEY, None) if request is not None else None
    if token:
        Detection.objects.hand_over(token, user)
