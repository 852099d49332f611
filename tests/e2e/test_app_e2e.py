"""The web app end to end in real headless Chromium against the real backend (see conftest.py)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import run_scenario

pytestmark = pytest.mark.slow


def test_every_role_signs_in_to_its_own_home(server, screenshots):
    result = run_scenario("sign_in", server, screenshots)
    assert result["homes"]["clinician"].startswith("/clinician")
    assert result["homes"]["dermatologist"].startswith("/dermatologist")
    assert result["homes"]["admin"].startswith("/admin")
