"""Hostile input against the whole flagship stack (issue 14), driven with raw WSGI environs.

A package, so that its modules import each other (``from .harness import ...``) without
shadowing tests/conftest.py.
"""
