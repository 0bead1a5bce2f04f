"""WSGI entry point; the detector app loads the model in each worker at start."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepfake_site.settings")

application = get_wsgi_application()
