"""Unit tests never start Ray: a call to `ray.init` here is a bug in the test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.card_server import CardServer, serve_card


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    def refuse(*_a: object, **_k: object) -> None:
        raise RuntimeError("unit tests must not start Ray; move this test to tests/integration")

    monkeypatch.setattr(ray, "init", refuse)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ACTORCHESTRA_* from the outer shell, and no `.env` in the working directory."""
    for key in list(os.environ):
        if key.startswith("ACTORCHESTRA_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
async def card_server() -> AsyncIterator[CardServer]:
    """A third party's agent card on loopback (`tests.unit.card_server`)."""
    async with serve_card() as server:
        yield server
