"""Serving an exported policy over HTTP (``winback serve``): :func:`~winback.serve.app.create_app`."""

from winback.serve.app import create_app

__all__ = ["create_app"]
