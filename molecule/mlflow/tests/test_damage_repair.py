"""Damage what the mlflow role manages; one converge repairs all of it, the next changes nothing.

Runs before test_mlflow.py (file order), whose last tests point the service at another venv.
"""

from __future__ import annotations

import re
from pathlib import Path

from conftest import run_playbook

SCENARIO_DIR = Path(__file__).resolve().parent.parent
SERVER = "mlflow-server"
VENV = "/opt/mlflow"
STATE = "/var/lib/mlflow"
ENV_FILE = "/etc/mlflow/mlflow.env"
UNIT = "/etc/systemd/system/mlflow.service"
HELPERS = f"{VENV}/libexec"
PLUGIN_SRC = f"{VENV}/src/mlflow-sftp-store/src/mlflow_sftp_store/__init__.py"
VERSIONS = (
    f'{VENV}/bin/python -c "import importlib.metadata as m; '
    "print(m.version('mlflow-sftp-store') if any(d.metadata['Name'] == 'mlflow-sftp-store' "
    "for d in m.distributions()) else '-', "
    "m.version('Flask-WTF') if any(d.metadata['Name'].lower() == 'flask-wtf' "
    "for d in m.distributions()) else '-')\""
)
# Settings file content and mode, the unit, the service's and the timer's enablement, a
# deleted helper and one with the wrong mode, the plugin's copied source, the plugin and a
# dependency of MLflow's auth extra uninstalled, an apt package removed, the state directory's mode.
DAMAGE = f"""set -e
echo 'MLFLOW_HAND_EDIT=1' >> {ENV_FILE}
chmod 0644 {ENV_FILE}
echo '# edited by hand' >> {UNIT}
systemctl disable mlflow.service 2>/dev/null
systemctl disable --now mlflow-backup.timer 2>/dev/null
rm {HELPERS}/mlflow_db.py
chmod 0600 {HELPERS}/mlflow_roundtrip.py
echo '# edited by hand' >> {PLUGIN_SRC}
{VENV}/bin/pip uninstall -q -y mlflow-sftp-store Flask-WTF
apt-get remove -y -q sqlite3 >/dev/null
chmod 0755 {STATE}
"""


def recap(output: str) -> dict[str, int]:
    """Host -> changed, from the PLAY RECAP."""
    return {m[0]: int(m[1]) for m in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


def managed_state(host) -> dict:
    """What the damage touches, as the role leaves it."""

    def file(path: str) -> tuple:
        f = host.file(path)
        return (f.sha256sum, f.user, f.group, f.mode) if f.exists else None

    return {
        "env_file": file(ENV_FILE),
        "unit": file(UNIT),
        "service": (host.service("mlflow").is_running, host.service("mlflow").is_enabled),
        "timer": host.service("mlflow-backup.timer").is_enabled,
        "mlflow_db.py": file(f"{HELPERS}/mlflow_db.py"),
        "mlflow_roundtrip.py": file(f"{HELPERS}/mlflow_roundtrip.py"),
        "plugin_source": file(PLUGIN_SRC),
        "packages": host.check_output(VERSIONS),
        "sqlite3": host.package("sqlite3").is_installed,
        "state_dir": host.file(STATE).mode,
    }


def test_one_converge_repairs_the_damage_the_next_changes_nothing(podman_host):
    host = podman_host(SERVER)
    before = managed_state(host)
    assert "-" not in before["packages"].split(), before["packages"]

    host.check_output(DAMAGE)
    damaged = managed_state(host)
    for what in before:
        if what != "service":
            assert damaged[what] != before[what], f"{what} was not damaged"
    assert damaged["service"] == (True, False)

    repair = run_playbook(SCENARIO_DIR, "converge.yml")
    assert recap(repair.stdout)[SERVER] > 0
    assert managed_state(host) == before
    # The settings file is back without the hand edit, and the restarted server answers.
    assert "MLFLOW_HAND_EDIT" not in host.check_output(f"cat {ENV_FILE}")
    assert host.socket("tcp://127.0.0.1:5000").is_listening

    again = run_playbook(SCENARIO_DIR, "converge.yml")
    assert all(changed == 0 for changed in recap(again.stdout).values()), again.stdout[-3000:]
