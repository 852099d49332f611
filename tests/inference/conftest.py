"""Fixtures for backend.inference tests that need no server: the exported model repository (shipped, or
the stand-in off CI) and the real lesion images, shared with the Triton server tests."""

from tests.triton.conftest import exported_repo, lesion_images, uses_standin  # noqa: F401
