"""The collection as a user gets it: built into a tarball, installed outside the checkout, used by FQCN.

`ansible-galaxy collection build` makes the tarball from this checkout (galaxy.yml's build_ignore
leaves out the tests, Molecule, benchmarks and local state); `ansible-galaxy collection install
-p` puts it into a temporary directory, and a playbook there, with no access to the checkout's
ansible.cfg, roles or link, uses a role, a filter and a module by their FQCN.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

PLAYBOOK = """\
- name: Use the installed collection by FQCN
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: The role's input checks run (defaults pass)
      ansible.builtin.include_role:
        name: mlops.mlflow.mlops_account
        tasks_from: assert

    - name: The URI filter corrects the notes' triple-slash URI
      ansible.builtin.assert:
        that:
          - not checked.ok
          - checked.suggestion == 'sftp://mlops@192.168.1.70:22/home/mlops/mlflow/mlruns'
      vars:
        uri: sftp:///mlops@192.168.1.70/home/mlops/mlflow/mlruns
        checked: "{{ uri | mlops.mlflow.mlflow_sftp_uri_check }}"

    - name: The doctor module (and its module_utils) runs on a small tree
      mlops.mlflow.mlflow_doctor:
        role: artifact
        artifact_root: "{{ tree }}"
        sftp_login: false
      register: doctor

    - name: The doctor walked the tree
      ansible.builtin.assert:
        that:
          - doctor is not changed
          - doctor.discovered.tree.files == 1
"""


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run CMD in CWD; fail the test with its output when it fails."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(cmd)}:\n{result.stdout[-4000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """(directory outside the checkout with the collection installed below collections/, env for Ansible)."""
    tmp = tmp_path_factory.mktemp("collection")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(tmp / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOME=str(tmp / "home"),
        # Modules run with this interpreter (the controller's), not one discovered on the machine.
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp / "dist"), str(ROOT)],
        tmp,
        env,
    )
    tarball = next((tmp / "dist").glob("mlops-mlflow-*.tar.gz"))
    run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(tmp / "collections"), str(tarball)],
        tmp,
        env,
    )
    return tmp, env


def test_tarball_holds_the_collection_and_nothing_local(installed: tuple[Path, dict[str, str]]) -> None:
    """The tarball has the roles and plugins, and none of the checkout's tests, tools or state."""
    tmp, _env = installed
    names = tarfile.open(next((tmp / "dist").glob("*.tar.gz"))).getnames()
    for wanted in (
        "MANIFEST.json",
        "meta/runtime.yml",
        "plugins/modules/mlflow_doctor.py",
        "plugins/module_utils/sftp_uri.py",
        "plugins/filter/mlflow_uri.py",
        "roles/mlflow/tasks/main.yml",
        # The SFTP store plugin's role, with the package it installs (its tests stay out).
        "roles/sftp_store_plugin/tasks/present.yml",
        "roles/sftp_store_plugin/files/mlflow-sftp-store/pyproject.toml",
        "roles/sftp_store_plugin/files/mlflow-sftp-store/src/mlflow_sftp_store/__init__.py",
    ):
        assert wanted in names, wanted
    for unwanted in ("collections", "molecule", "benchmarks", "tests", ".venv", ".cache", "credentials"):
        assert not any(n == unwanted or n.startswith(unwanted + "/") for n in names), unwanted
    assert not any("/tests/" in n or n.endswith("/tests") for n in names)


@pytest.mark.parametrize("name", ["alembic_revisions.py", "helper_cli.py"])
def test_host_helper_is_installed_beside_mlflow_db(installed: tuple[Path, dict[str, str]], name: str) -> None:
    """The shared code of the host helpers reaches the role's files as a real file (the host gets a copy)."""
    tmp, _env = installed
    base = tmp / "collections" / "ansible_collections" / "mlops" / "mlflow"
    helper = base / "roles" / "mlflow" / "files" / "libexec" / name
    assert helper.is_file()
    assert helper.read_text() == (ROOT / "plugins" / "module_utils" / name).read_text()


def test_playbook_outside_the_checkout_uses_the_fqcn(installed: tuple[Path, dict[str, str]]) -> None:
    """A playbook in the temporary directory runs a role, a filter and a module of mlops.mlflow."""
    tmp, env = installed
    play = tmp / "play"
    (play / "tree" / "a").mkdir(parents=True)
    (play / "tree" / "a" / "file").write_text("x")
    (play / "site.yml").write_text(PLAYBOOK)
    result = run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "site.yml", "-e", f"tree={play / 'tree'}"],
        play,
        env,
    )
    assert "failed=0" in result.stdout
    # A bad input to the role fails: the role really ran, from the installed collection.
    bad = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "site.yml",
            "-e",
            f"tree={play / 'tree'}",
            "-e",
            "mlops_account_name=root",
        ],
        cwd=play,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode != 0 and "Invalid mlops_account_* variable" in bad.stdout, bad.stdout[-3000:]


def test_every_module_documents_itself(installed: tuple[Path, dict[str, str]]) -> None:
    """ansible-doc reads every module of the installed collection (shared doc fragments included)."""
    tmp, env = installed
    modules = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py"))
    result = run([str(BIN / "ansible-doc"), "--json", *(f"mlops.mlflow.{m}" for m in modules)], tmp, env)
    docs = json.loads(result.stdout)
    assert sorted(docs) == [f"mlops.mlflow.{m}" for m in modules]
    for name, doc in docs.items():
        assert doc["doc"]["options"] or name.endswith("_info"), name
    assert "unit" in docs["mlops.mlflow.mlflow_hand_started"]["doc"]["options"]
