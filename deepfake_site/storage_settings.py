"""Where media live (uploads, their copies, face pictures): a folder, or an S3-compatible bucket.

Web processes and Celery workers read and write the same files, so across machines the folder
must be shared (NFS or the like), or the storage a bucket.
"""

from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

LOCAL = "detector.storage.MediaStorage"
S3 = "storages.backends.s3.S3Storage"


def media_storage(environ: Mapping[str, str]) -> dict:
    """``STORAGES["default"]`` for ``DETECTOR_MEDIA_STORAGE``: ``local`` (MEDIA_ROOT) or ``s3`` (``DETECTOR_S3_*``)."""
    kind = environ.get("DETECTOR_MEDIA_STORAGE", "").strip().lower() or "local"
    if kind == "local":
        return {"BACKEND": LOCAL}
    if kind != "s3":
        raise ImproperlyConfigured(f"DETECTOR_MEDIA_STORAGE must be 'local' or 's3', not {kind!r}")
    bucket = environ.get("DETECTOR_S3_BUCKET", "").strip()
    if not bucket:
        raise ImproperlyConfigured("DETECTOR_MEDIA_STORAGE=s3 needs DETECTOR_S3_BUCKET")
    endpoint = environ.get("DETECTOR_S3_ENDPOINT_URL", "").strip() or None
    options = {
        "bucket_name": bucket,
        "endpoint_url": endpoint,
        "region_name": environ.get("DETECTOR_S3_REGION", "").strip() or None,
        # Files reach people only through the owner-checking views, never a bucket URL. So no object
        # ACL is sent (objects stay as private as the bucket; AWS refuses ACLs where they are disabled),
        # and any URL that code asks for is signed and expires.
        "default_acl": None,
        "querystring_auth": True,
        "file_overwrite": False,
    }
    if endpoint:
        options["addressing_style"] = "path"  # what MinIO and most S3-compatible servers expect
    # Credentials: boto3's usual chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an instance role).
    return {"BACKEND": S3, "OPTIONS": options}
