"""Unit tests of the venv_link module: adoption, switch and pruning on real directories and links."""

from __future__ import annotations

import os
from pathlib import Path

from ansible_collections.mlops.mlflow.tests.module_process import run_module

MODULE = Path(__file__).resolve().parents[4] / "plugins" / "modules" / "venv_link.py"


def make_venv(where: Path, version: str) -> Path:
    """A directory that looks like a virtualenv holding MLflow VERSION."""
    (where / "lib" / "python3.11" / "site-packages" / f"mlflow-{version}.dist-info").mkdir(parents=True)
    (where / "pyvenv.cfg").write_text("home = /usr/bin\n")
    return where


def run(args: dict, tmp_path: Path) -> dict:
    """The module as a process with an arguments file, the way AnsiballZ hands them over."""
    return run_module(MODULE, args, tmp_path)


def test_a_real_directory_is_renamed_to_its_version_and_linked(tmp_path: Path):
    link = tmp_path / "mlflow"
    make_venv(link, "3.16.1")
    (link / "marker").write_text("same inode")
    inode = (link / "marker").stat().st_ino
    preview = run({"path": str(link), "_ansible_check_mode": True}, tmp_path)
    assert preview["changed"] and preview["adopted"] == f"{link}-3.16.1"
    assert link.is_dir() and not link.is_symlink()
    res = run({"path": str(link)}, tmp_path)
    assert res["changed"] and res["adopted"] == f"{link}-3.16.1", res
    assert os.readlink(link) == f"{link}-3.16.1"
    assert (link / "marker").stat().st_ino == inode
    assert run({"path": str(link)}, tmp_path)["changed"] is False


def test_switch_keeps_the_previous_and_prunes_older_ones(tmp_path: Path):
    link = tmp_path / "mlflow"
    for version in ("3.15.0", "3.16.1", "3.17.2"):
        make_venv(tmp_path / f"mlflow-{version}", version)
    # Neither a venv of this layout nor one of its versions: never touched.
    make_venv(tmp_path / "mlflow-client", "3.17.2")
    (tmp_path / "mlflow-wheelhouse").mkdir()
    os.utime(tmp_path / "mlflow-3.15.0", (1, 1))
    os.symlink(tmp_path / "mlflow-3.16.1", link)
    args = {"path": str(link), "target": str(tmp_path / "mlflow-3.17.2"), "keep_previous": 1}
    preview = run({**args, "_ansible_check_mode": True}, tmp_path)
    assert preview["switched"] and preview["removed"] == [str(tmp_path / "mlflow-3.15.0")], preview
    assert os.readlink(link) == str(tmp_path / "mlflow-3.16.1")
    res = run(args, tmp_path)
    assert res["switched"] and res["previous"] == str(tmp_path / "mlflow-3.16.1"), res
    assert os.readlink(link) == str(tmp_path / "mlflow-3.17.2")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("mlflow-")) == [
        "mlflow-3.16.1",
        "mlflow-3.17.2",
        "mlflow-client",
        "mlflow-wheelhouse",
    ]
    assert run(args, tmp_path)["changed"] is False


def test_create_only_links_a_fresh_install_and_leaves_an_existing_link(tmp_path: Path):
    link = tmp_path / "mlflow"
    make_venv(tmp_path / "mlflow-3.16.1", "3.16.1")
    make_venv(tmp_path / "mlflow-3.17.2", "3.17.2")
    args = {"path": str(link), "target": str(tmp_path / "mlflow-3.16.1"), "create_only": True}
    assert run(args, tmp_path)["changed"] is True
    assert os.readlink(link) == str(tmp_path / "mlflow-3.16.1")
    res = run({**args, "target": str(tmp_path / "mlflow-3.17.2")}, tmp_path)
    assert res["changed"] is False and os.readlink(link) == str(tmp_path / "mlflow-3.16.1"), res
