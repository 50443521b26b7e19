"""The CLI's error contract: user errors are one line on stderr with exit code 2 (never 1,
which means "drift" to a scheduler); ``name@version`` works wherever a group is named."""

from __future__ import annotations

import textwrap

from test_cli_core import run


def _one_line_error(out, *needles):
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_name_at_version_works_wherever_a_group_is_named(tmp_path):
    run(["apply", "jobs/flights/features.py"], tmp_path)
    assert run(["describe", "weather@1"], tmp_path).stdout.startswith("weather (version 1)")
    out = run(["materialize", "weather@1", "--engine", "local"], tmp_path)
    assert '"group": "weather", "version": 1' in out.stdout
    # no statistics / no expectations yet: the group was found, the message says why
    _one_line_error(run(["stats", "weather@1"], tmp_path, check=False), "no statistics yet")
    _one_line_error(run(["describe", "weather@2"], tmp_path, check=False), "weather")
    _one_line_error(run(["describe", "weather@\u0663"], tmp_path, check=False),
                    "ASCII digits")
    _one_line_error(run(["describe", "weather@99999999999999999999"], tmp_path, check=False),
                    "1 to 9 ASCII digits")


def test_monitor_with_a_bad_time_exits_2_not_1(tmp_path):
    run(["apply", "jobs/flights/features.py"], tmp_path)
    out = run(["monitor", "weather", "--baseline", "1", "--start", "garbage"], tmp_path,
              check=False)
    _one_line_error(out, "--start 'garbage' is not an ISO 8601 time")


def test_entity_values_that_only_look_like_numbers_stay_strings(tmp_path):
    run(["apply", "jobs/flights/features.py"], tmp_path)
    out = run(["get-online", "-f", "planes:seats", "-e", "tailnum=--5"], tmp_path)
    assert '"tailnum": ["--5"]' in out.stdout and '"seats": [null]' in out.stdout


def test_a_repo_that_fails_to_import_is_one_line_naming_file_line_and_cause(tmp_path):
    bad = tmp_path / "bad_repo.py"
    bad.write_text("x = 1\nraise RuntimeError('boom at import')\n")
    _one_line_error(run(["apply", str(bad)], tmp_path, check=False),
                    "bad_repo.py", "(line 2)", "RuntimeError: boom at import")
    bad.write_text("def f(:\n")
    _one_line_error(run(["apply", str(bad)], tmp_path, check=False), "SyntaxError")


def test_control_characters_in_descriptions_are_printed_escaped(tmp_path):
    repo = tmp_path / "repo.py"
    repo.write_text(textwrap.dedent('''
        from sparkfs import Entity, FeatureGroup, Field
        e = Entity("user", join_keys=["user_id"])
        g = FeatureGroup("clicks", [e], "ts", [Field("n", "long", description="count\\x1b[2J")],
                         description="clicks\\x1b]0;pwned\\x07 per user")
    '''))
    run(["apply", str(repo)], tmp_path)
    for args in (["search", "clicks"], ["describe", "clicks"]):
        out = run(args, tmp_path).stdout
        assert "\x1b" not in out and "\x07" not in out
        assert "\\x1b" in out
