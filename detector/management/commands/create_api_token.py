from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from detector.models import ApiToken
from detector.services import tokens


class Command(BaseCommand):
    help = (
        "Make a new API key for a user and print it on the last line (Authorization: Token <key>). It is kept only as "
        "a hash: it cannot be printed again. People make and revoke their own keys at /accounts/tokens/."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="what the key is for (shown on the tokens page)")
        parser.add_argument("--reset", action="store_true", help="revoke the user's other keys first")

    def handle(self, *args, username, name, reset, **opts):
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist as exc:
            raise CommandError(f"no user named {username!r}") from exc
        if not user.is_active:
            raise CommandError(f"{username!r} is inactive; a key would not authenticate them")
        with transaction.atomic():
            if reset:
                ApiToken.objects.filter(user=user, revoked_at=None).update(revoked_at=timezone.now())
                Token.objects.filter(user=user).delete()  # an older single token, made before keys had names
            _, key = tokens.create(user, name)
        self.stdout.write(key)
