"""Services that the web views, the admin, the CLI and workers share."""
