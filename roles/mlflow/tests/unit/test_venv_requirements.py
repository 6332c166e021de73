"""Unit tests of the venv_requirements module: requirements read against a fake virtualenv."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[4] / "plugins" / "modules" / "venv_requirements.py"
spec = importlib.util.spec_from_file_location("venv_requirements", MODULE)
venv_requirements = importlib.util.module_from_spec(spec)
spec.loader.exec_module(venv_requirements)


def dist(site: Path, name: str, version: str, requires: list[str] = ()) -> None:
    """A distribution as pip leaves it: NAME-VERSION.dist-info/METADATA."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    dist(site, "mlflow", "3.1.0", ["Flask<4", 'Flask-WTF<2; extra == "auth"', 'pytest; extra == "dev"'])
    dist(site, "Flask", "3.0.0")
    dist(site, "mlflow-sftp-store", "0.1.0")
    dist(site, "paramiko", "3.4.0")
    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    return tmp_path / "venv"


def test_met_requirements(venv: Path):
    reqs = ["mlflow==3.1.0", "paramiko<4", "flask", "mlflow-sftp-store @ file:///opt/src/mlflow-sftp-store"]
    assert venv_requirements.unmet(reqs, str(venv)) == []


def test_wrong_version_missing_package_and_missing_extra(venv: Path):
    reqs = ["mlflow==3.2.0", "pysftp", "mlflow[auth]==3.1.0", "paramiko>=4", "mlflow[dev]==3.1.0"]
    assert venv_requirements.unmet(reqs, str(venv)) == reqs


def test_an_extra_is_met_when_its_requirements_are(venv: Path):
    dist(venv / "lib" / "python3.11" / "site-packages", "Flask-WTF", "1.2.1")
    assert venv_requirements.unmet(["mlflow[auth]==3.1.0"], str(venv)) == []


def test_marker_for_another_platform_and_unreadable_lines(venv: Path):
    assert venv_requirements.unmet(
        ['pysftp; sys_platform == "win32"', "not a requirement !!"], str(venv)
    ) == ["not a requirement !!"]


def run(args: dict, tmp_path: Path) -> dict:
    """The module as a process with an arguments file, the way AnsiballZ hands them over."""
    argfile = tmp_path / "args.json"
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    argv = [sys.executable, str(MODULE), str(argfile)]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=False).stdout)


def test_check_mode_reports_without_installing(venv: Path, tmp_path: Path):
    args = {"venv": str(venv), "requirements": ["mlflow==3.1.0", "pysftp"], "_ansible_check_mode": True}
    res = run(args, tmp_path)
    assert res["changed"] is True and res["unmet"] == ["pysftp"] and not res["venv_created"], res
    res = run({**args, "requirements": ["mlflow==3.1.0"]}, tmp_path)
    assert res["changed"] is False, res
    res = run({**args, "requirements": ["mlflow==3.1.0"], "force_reinstall": True}, tmp_path)
    assert res["changed"] is True and res["reinstalled"] == ["mlflow==3.1.0"], res


def test_a_missing_venv_is_created_in_a_real_run(tmp_path: Path):
    where = tmp_path / "new-venv"
    args = {
        "venv": str(where),
        "requirements": [],
        "virtualenv_command": f"{sys.executable} -m venv --without-pip",
    }
    res = run(args, tmp_path)
    assert res["changed"] is True and res["venv_created"] is True, res
    assert (where / "bin" / "python").exists()
    assert run(args, tmp_path)["changed"] is False


WHEELHOUSE = sorted(Path(__file__).resolve().parents[4].glob(".cache/wheelhouse/*/six-*.whl"))


@pytest.mark.skipif(not WHEELHOUSE, reason="no wheelhouse yet (make hostprep builds it)")
def test_compile_imports_writes_the_byte_code_of_what_is_imported_only(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(WHEELHOUSE[0].parent))
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    where = tmp_path / "venv"
    args = {
        "venv": str(where),
        "requirements": ["six", "idna"],
        "virtualenv_command": f"{sys.executable} -m venv",
        "compile_imports": ["idna.core"],
    }
    assert run({**args, "compile_imports": ["idna; import os"]}, tmp_path)["failed"] is True
    assert not where.exists()
    res = run(args, tmp_path)
    assert res["changed"] is True and res["unmet"] == ["six", "idna"], res
    site = next(where.glob("lib/python3*/site-packages"))
    assert list((site / "idna" / "__pycache__").glob("core.*.pyc"))
    # six was installed, not imported: pip compiled nothing.
    assert (site / "six.py").exists() and not list(site.glob("__pycache__/six.*.pyc"))
    assert run(args, tmp_path)["changed"] is False
