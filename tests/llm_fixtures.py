"""Fixtures for tests that need the offline model server (import them into a test module,
or from a conftest: `from tests.llm_fixtures import model_server  # noqa: F401`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actorchestra.serve_apps.model_server import ModelServerHandle, start_model_server


@pytest.fixture(scope="session")
def model_server() -> Iterator[ModelServerHandle]:
    """One offline model server on a free loopback port for the whole run."""
    handle = start_model_server()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def faulty_model_server(model_server: ModelServerHandle) -> Iterator[ModelServerHandle]:
    """The shared server, with any faults a test queued cleared when it ends."""
    model_server.clear_faults()
    try:
        yield model_server
    finally:
        model_server.clear_faults()
