"""TypeScript (strict), ESLint and the Jest component tests of the app, as the CI summary counts them."""

from __future__ import annotations

import pytest


def test_typescript_compiles_without_errors(run_in_mobile):
    run_in_mobile("npx", "tsc", "--noEmit")


def test_eslint_reports_nothing(run_in_mobile):
    run_in_mobile("npx", "eslint", ".", "--max-warnings", "0")


@pytest.mark.slow
def test_jest_component_tests_pass(run_in_mobile):
    result = run_in_mobile("npx", "jest", "--ci")
    assert "Tests:" in result.stderr + result.stdout  # jest ran tests, not an empty selection
