"""``manage.py nginx_config``: the nginx configuration for this site's limits (deploy/nginx.conf is its defaults)."""

import math

from django.conf import settings
from django.core.management.base import BaseCommand
from django.template.loader import render_to_string


def render(upstream: str = "127.0.0.1:8000", listen: str = "80", static_root: str | None = None) -> str:
    """nginx's site configuration: the request ceiling from DETECTOR_MAX_REQUEST_MB, buffered requests, and read
    timeouts for slow clients."""
    return render_to_string(
        "deploy/nginx.conf",
        {
            "upstream": upstream,
            "listen": listen,
            "static_root": static_root or settings.STATIC_ROOT,
            "max_body_mb": math.ceil(settings.DETECTOR_MAX_REQUEST_MB),
            "read_timeout": 75,
        },
    )


class Command(BaseCommand):
    help = "Print the nginx configuration for this site (the request ceiling and timeouts from the settings)."

    def add_arguments(self, parser):
        parser.add_argument("--upstream", default="127.0.0.1:8000", help="where gunicorn listens (host:port)")
        parser.add_argument("--listen", default="80", help="nginx's listen directive (e.g. 80, or 8080)")
        parser.add_argument("--static-root", default=None, help="the collected static files (default STATIC_ROOT)")

    def handle(self, *args, upstream, listen, static_root, **options):
        self.stdout.write(render(upstream, listen, static_root), ending="")
