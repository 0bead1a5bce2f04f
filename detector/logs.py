"""Logging helpers the settings' ``LOGGING`` names."""

import logging


class WithoutTraceback(logging.Filter):
    """A client's error (``django.security``: a bad Host header, a malformed request) in one line: its traceback
    says nothing of the server, and one per request would bury the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = record.exc_text = record.stack_info = None
        return True
