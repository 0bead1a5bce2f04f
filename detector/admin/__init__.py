"""The Django admin, by job: the detections with their review and actions (:mod:`.detections`, :mod:`.actions`),
and the model versions with the re-analysis batches (:mod:`.model_versions`). Importing the package registers them.
"""

from django.contrib import admin

from . import detections, integrations, model_versions  # noqa: F401 (registered on import)

# The list of detections needs the width: the model index is one click away under Home, not a sidebar.
admin.site.enable_nav_sidebar = False
