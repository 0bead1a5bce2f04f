"""The local media folder, as Django's file storage, with one repair: a failed write leaves nothing behind."""

from __future__ import annotations

import contextlib
import os

from django.core.files.storage import FileSystemStorage


class StorageUnavailable(Exception):
    """The media storage cannot be read or written now (a full or read-only disk, a lost share, S3 down): the
    request is answered 503, as a database that is down is."""


class MediaStorage(FileSystemStorage):
    """Django's FileSystemStorage, except that a write that fails half-way (a full disk, a lost share) removes its
    partial file: the caller never learns the name of a file it did not manage to save, so nothing else could."""

    def _save(self, name, content):
        try:
            return super()._save(name, content)
        except FileExistsError:
            raise  # a folder in the way: nothing of ours was written
        except BaseException:
            # The file was created exclusively (O_EXCL) under this generated name, so it is this write's own.
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path(name))
            raise
