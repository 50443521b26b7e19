"""The inference CLI: one-line errors with exit code 2 naming what is missing."""

from __future__ import annotations

from test_cli_core import run
from test_cli_errors import _one_line_error


def test_unknown_deployment_and_model_are_one_line_errors(tmp_path):
    assert run(["deployments"], tmp_path).stdout == ""
    _one_line_error(run(["predict", "nope", "--entity", "origin=JFK"], tmp_path, check=False),
                    "deployment 'nope' does not exist", "none (create one with fs.deploy)")
    _one_line_error(run(["log", "nope"], tmp_path, check=False), "deployment 'nope'")
    _one_line_error(run(["predict", "nope"], tmp_path, check=False), "--entity")
    _one_line_error(run(["deploy", "d", "--model", "nope"], tmp_path, check=False),
                    "model 'nope' is not registered")
