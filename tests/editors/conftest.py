"""Editors' tests run the app with an admin key and a preview token configured."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from gateway.settings import Settings
from tests.editors.keys import ADMIN_KEY, PREVIEW_TOKEN


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"admin_keys": SecretStr(ADMIN_KEY), "preview_tokens": SecretStr(PREVIEW_TOKEN)}
    )
