"""The REST API under /api/v1/: thin views over the same services and checks as the web pages."""
