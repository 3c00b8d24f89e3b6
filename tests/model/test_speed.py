"""Performance choices must not change a number: weight layout, stage timing, device choice."""

from __future__ import annotations


def test_build_records_where_its_time_went(demo_index):
    manifest = demo_index.manifest
    stages = manifest["stage_seconds"]
    assert {"read", "tokenize", "forward", "commit", "project", "write", "lexical"} <= set(stages)
    assert all(s >= 0 for s in stages.values())
    assert stages["forward"] > 0 and stages["forward"] == max(stages.values())  # the model dominates
    on_main_thread = ("forward", "commit", "project", "write", "lexical")  # read, tokenize: read-ahead thread
    assert sum(stages[s] for s in on_main_thread) <= manifest["build_seconds"]


