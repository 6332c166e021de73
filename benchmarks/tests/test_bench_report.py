"""Unit tests of benchmarks/report.py: the stored results.json files render to their results.md.

report.py is loaded from its path (it imports nothing else of benchmarks/), so these tests put
nothing on sys.path and run from any directory.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1]
RESULTS = BENCHMARKS / "results"
spec = importlib.util.spec_from_file_location("bench_report", BENCHMARKS / "report.py")
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)

# The stored runs whose markdown was written by run.py together with their JSON.
STORED = ["results", "artifacts-5-rounds", "strategy-first-run", "strategy"]


def load(name: str) -> dict:
    """A stored results JSON file of benchmarks/results/."""
    return json.loads((RESULTS / f"{name}.json").read_text())


@pytest.mark.parametrize("name", STORED)
def test_markdown_matches_stored(name: str) -> None:
    """The stored results.json renders to exactly the stored results.md."""
    assert report.markdown(load(name)) == (RESULTS / f"{name}.md").read_text()


@pytest.mark.parametrize("name", STORED)
def test_targets_match_stored(name: str) -> None:
    """The targets recomputed from the measurements are the ones stored with them."""
    res = load(name)
    assert report.targets(res) == res["targets"]


def test_sections_left_out_and_errors() -> None:
    """A run with only some sections and an error renders them, the error, and nothing else."""
    res = copy.deepcopy(load("results"))
    for section in ("provisioning", "tracking", "artifacts"):
        del res[section]
    res["errors"] = ["tracking: RuntimeError: boom"]
    res["targets"] = report.targets(res)
    md = report.markdown(res)
    assert res["targets"] == []
    assert "## Artifact permission repair" in md
    assert "## Provisioning" not in md
    assert "## Tracking throughput" not in md
    assert md.endswith("## Errors\n\n- tracking: RuntimeError: boom\n")


def test_verdicts() -> None:
    """met, not met (bold) and n/a for a target that could not be measured."""
    assert [report.verdict(v) for v in (True, False, None)] == ["met", "**not met**", "n/a"]


def test_cli_writes_markdown(tmp_path: Path) -> None:
    """`report.py results.json --output x.md` writes the same markdown as the stored one."""
    out = tmp_path / "results.md"
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "report.py"), str(RESULTS / "results.json"), "--output", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_text() == (RESULTS / "results.md").read_text()
