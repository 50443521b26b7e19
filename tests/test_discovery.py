"""Discovery: fs.search over names, descriptions, tags and owners (registry only, no Spark)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from sparkfs.errors import SparkfsError


@pytest.fixture
def repo(fs_nospark):
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from jobs.flights import features
    from sparkfs.repo import definitions_in

    fs_nospark.apply(definitions_in(features))
    return fs_nospark


def test_search_finds_by_description(repo):
    names = [h.name for h in repo.search("delay")]
    assert "flight_facts:dep_delay" in names  # description "Departure delay, minutes"
    hit = next(h for h in repo.search("gust speed") if h.name == "weather:wind_gust")
    assert hit.kind == "feature" and hit.dtype == "double" and "description" in hit.matched


def test_search_finds_by_tag_and_owner(repo):
    by_tag = repo.search("noaa")
    assert by_tag[0].kind == "feature_group" and by_tag[0].name == "weather"
    assert "weather:temp" in [h.name for h in by_tag]  # features inherit group tags
    assert {h.name for h in repo.search("domain=fleet") if h.kind == "feature_group"} == {"planes"}
    owned = repo.search("data-quality@")
    assert owned[0].name == "flight_facts" and "owner" in owned[0].matched


def test_search_ranks_names_first_and_needs_every_word(repo):
    hits = repo.search("wind")
    assert hits[0].name in ("weather:wind_dir", "weather:wind_speed", "weather:wind_gust")
    assert [h.name for h in repo.search("wind gust")] == ["weather:wind_gust"]
    assert len(repo.search("no-such-text-anywhere")) == 0
    assert str(repo.search("no-such-text-anywhere")) == "no matches"
    with pytest.raises(SparkfsError, match="needs some text"):
        repo.search("  ")


def test_search_cli(repo, store_config, tmp_path, capsys):
    from sparkfs.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(store_config))
    assert main(["--config", str(cfg), "search", "tail", "number"]) == 0
    out = capsys.readouterr().out
    assert "flight_facts:tailnum" in out and "KIND" in out
    assert main(["--config", str(cfg), "search", "noaa", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "weather"
