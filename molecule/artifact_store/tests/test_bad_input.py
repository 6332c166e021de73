"""Each bad input fails in the role's input checks, names the variable and the fix, and
changes nothing on the host."""

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from artifact_store_helpers import DEFAULT_HOST, SCENARIO_DIR, recap, snapshot
from conftest import run_playbook

CASES = [
    # (extra var, variable named, words of the fix)
    ("artifact_store_root=relative/path", "artifact_store_root", "give the full path starting with /"),
    ("artifact_store_root=~/mlruns", "artifact_store_root", "write the home directory out"),
    ("artifact_store_root=/home/mlops/../x", "artifact_store_root", "give the resolved path"),
    ("artifact_store_root=/home//mlops", "artifact_store_root", "single slashes"),
    ("artifact_store_root=/home/mlops", "artifact_store_root", "use a directory below the home"),
    ("artifact_store_root=/etc/mlruns", "artifact_store_root", "pick a dedicated directory"),
    ("artifact_store_port=0", "artifact_store_port", "a number from 1 to 65535"),
    ("artifact_store_port=70000", "artifact_store_port", "a number from 1 to 65535"),
    ("artifact_store_port=abc", "artifact_store_port", "a number from 1 to 65535"),
    ("artifact_store_user=", "artifact_store_user", "set artifact_store_user to the account"),
    ("artifact_store_user=nosuchuser", "artifact_store_user", "apply the mlops_account role"),
    ("artifact_store_group=nosuchgroup", "artifact_store_group", "create the group"),
    ('{"artifact_store_root": "/srv/my artifacts"}', "artifact_store_root", "use a path without them"),
    ("artifact_store_chroot=srv/sftp", "artifact_store_chroot", "artifact_store_chroot: /srv/mlflow-sftp"),
    ("artifact_store_chroot=/srv", "artifact_store_chroot", "artifact_store_chroot: /srv/mlflow-sftp"),
    ("artifact_store_chroot=/home/mlops/mlflow", "artifact_store_chroot", "keep them apart"),
    ("artifact_store_chroot=/home/mlops/mlflow/mlruns/c", "artifact_store_chroot", "keep them apart"),
]


@pytest.fixture(scope="module")
def runs(podman_host):
    """Run converge once per bad input (4 at a time), between two snapshots of the host."""
    host = podman_host(DEFAULT_HOST)
    before = snapshot(host)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            extra: pool.submit(
                run_playbook, SCENARIO_DIR, "converge.yml", "--limit", DEFAULT_HOST, "-e", extra, check=False
            )
            for extra, _variable, _fix in CASES
        }
        results = {extra: future.result() for extra, future in futures.items()}
    return before, snapshot(host), results


@pytest.mark.parametrize(("extra", "variable", "fix"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_any_change(runs, extra, variable, fix):
    before, after, results = runs
    result = results[extra]
    out, err = result.stdout, result.stderr
    assert result.returncode != 0, out[-3000:] + err[-3000:]
    # The failing task (the last one started) is one of the role's input checks ...
    tasks = re.findall(r"TASK \[([^\]]*)\]", out)
    assert tasks and tasks[-1].startswith("artifact_store : Assert |"), tasks[-1:]
    # ... whose message names the variable and the fix.
    fatal = err.find("fatal: [")
    assert fatal >= 0, err[-3000:]
    message = json.loads(err[fatal:].split("=> ", 1)[1].splitlines()[0])["msg"]
    assert variable in message
    assert "Fix:" in message and fix in message, message
    # Nothing changed: no task reported a change, and the host looks exactly the same
    # (owners, modes, sizes and mtimes of what the roles manage, sshd's listening ports).
    assert "\nchanged: [" not in out
    counters = recap(out, DEFAULT_HOST)
    assert (counters["changed"], counters["failed"]) == (0, 1)
    assert after == before
