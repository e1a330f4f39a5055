"""A Flask REST API backend; `create_app` builds the application."""

from backend.app import create_app

__all__ = ["create_app"]
