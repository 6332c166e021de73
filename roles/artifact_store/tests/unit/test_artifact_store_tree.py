"""Unit tests of the artifact_store_tree module's walk, on temporary trees of this machine.

They chown to nobody:nogroup, so they need root (CI and the dev machines run as root).
"""

from __future__ import annotations

import grp
import importlib.util
import os
import pwd
import stat
from pathlib import Path

import pytest
from ansible_collections.mlops.mlflow.tests import module_process

LIBRARY = Path(__file__).resolve().parents[4] / "plugins" / "modules" / "artifact_store_tree.py"
spec = importlib.util.spec_from_file_location("artifact_store_tree", LIBRARY)
tree = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tree)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")

NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrnam("nogroup").gr_gid


def repair(path: Path, home: str = "/nonexistent", check: bool = False):
    r = tree.Repair(
        path=str(path),
        uid=NOBODY.pw_uid,
        gid=NOGROUP,
        dir_mode=0o2750,
        file_mode=0o640,
        user_groups=set(os.getgrouplist("nobody", NOBODY.pw_gid)),
        home=home,
        check=check,
        sample_size=5,
    )
    r.run()
    return r


def state(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    tmp_path.chmod(0o755)
    return tmp_path


@pytest.fixture
def broken(base: Path) -> Path:
    """A tree made by root: 2 wrong dirs below the root, 3 wrong files, a symlink out, a FIFO."""
    root = base / "mlruns"
    (root / "0" / "run").mkdir(parents=True, mode=0o700)
    for name, mode in (("0/meta.yaml", 0o600), ("0/run/model.pkl", 0o666), ("0/run/x.sh", 0o755)):
        (root / name).write_text("x")
        (root / name).chmod(mode)
    outside = base / "outside.txt"
    outside.write_text("secret")
    outside.chmod(0o600)
    (root / "0" / "link").symlink_to(outside)
    os.mkfifo(root / "fifo")
    return root


def test_repairs_every_wrong_entry_and_never_follows_links(broken: Path):
    r = repair(broken)
    assert (r.counts["dirs"], r.counts["files"]) == (3, 3)
    assert (r.counts["dirs_fixed"], r.counts["files_fixed"]) == (3, 3)
    assert (r.counts["symlinks_skipped"], r.counts["others_skipped"]) == (1, 1)
    want_dir, want_file = (NOBODY.pw_uid, NOGROUP, 0o2750), (NOBODY.pw_uid, NOGROUP, 0o640)
    for d in (broken, broken / "0", broken / "0" / "run"):
        assert state(d) == want_dir
    for f in ("0/meta.yaml", "0/run/model.pkl", "0/run/x.sh"):
        assert state(broken / f) == want_file
    assert state(broken.parent / "outside.txt") == (0, 0, 0o600)
    assert state(broken / "0" / "link")[0] == 0
    assert state(broken / "fifo")[0] == 0


def test_right_tree_is_left_alone(broken: Path):
    repair(broken)
    again = repair(broken)
    assert (again.counts["dirs_fixed"], again.counts["files_fixed"]) == (0, 0)
    assert again.created == again.parents_fixed == again.sample == []


def test_check_mode_counts_without_changing(broken: Path):
    before = {p: state(p) for p in broken.rglob("*")}
    r = repair(broken, check=True)
    assert (r.counts["dirs_fixed"], r.counts["files_fixed"]) == (3, 3)
    assert {p: state(p) for p in broken.rglob("*")} == before


def test_missing_parents_and_root_are_created(base: Path):
    root = base / "srv" / "mlflow" / "artifacts"
    r = repair(root, check=True)
    assert r.created == [str(base / "srv"), str(base / "srv" / "mlflow"), str(root)]
    assert not (base / "srv").exists()
    r = repair(root)
    for d in (base / "srv", base / "srv" / "mlflow", root):
        assert state(d) == (NOBODY.pw_uid, NOGROUP, 0o2750)


def test_parents_below_home_are_owned_others_only_made_traversable(base: Path):
    home = base / "home"
    (home / "mlflow").mkdir(parents=True)
    home.chmod(0o700)  # root-owned and closed: needs o+x only
    root = home / "mlflow" / "mlruns"
    r = repair(root, home=str(home))
    assert state(home) == (0, 0, 0o701)
    assert state(home / "mlflow") == (NOBODY.pw_uid, NOGROUP, 0o2750)
    assert state(root) == (NOBODY.pw_uid, NOGROUP, 0o2750)
    assert len(r.parents_fixed) == 2


def test_symlinked_component_in_a_user_writable_directory_is_refused(base: Path):
    home = base / "home"
    home.mkdir()
    os.chown(home, NOBODY.pw_uid, NOGROUP)
    (home / "mlflow").symlink_to(base / "elsewhere")
    (base / "elsewhere").mkdir()
    with pytest.raises(tree.TreeError, match="symbolic link"):
        repair(home / "mlflow" / "mlruns", home=str(home))
    assert state(base / "elsewhere")[0] == 0
    assert not (base / "elsewhere" / "mlruns").exists()


def run_module(args: dict, tmp_path: Path) -> dict:
    """The module as Ansible runs it: arguments in a JSON file, the result on stdout."""
    return module_process.run_module(LIBRARY, args, tmp_path)


def test_preview_before_the_account_exists_reports_a_change(base: Path):
    # Check mode of a first run: the account tier has not really created the owner.
    args = {"path": str(base / "mlruns"), "owner": "no-such-user-x", "group": "no-such-group-x"}
    previewed = run_module({**args, "_ansible_check_mode": True}, base)
    assert previewed["changed"] is True and not previewed.get("failed"), previewed
    assert not (base / "mlruns").exists()
    # A real run with a missing owner fails, naming it.
    real = run_module(args, base)
    assert real["failed"] is True and "no-such-user-x" in real["msg"], real
