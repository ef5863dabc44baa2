"""Versions the service reports: the app (this code) and the public API path version."""

APP_VERSION = "0.1.0"
API_VERSION = "v1"
