"""Owners and modes of the artifact roots, their parents and the tree repaired at first converge."""

import pytest

DEFAULT_ROOT = "/home/mlops/mlflow/mlruns"
CUSTOM_ROOT = "/srv/mlflow/artifacts"
SETGID_DIR = 0o2750
FILE = 0o640


def entry(host, path):
    f = host.file(path)
    assert f.exists, path
    return f.user, f.group, f.mode


def test_default_root_and_parents(podman_host):
    host = podman_host("artifact-store-default")
    assert entry(host, "/home") == ("root", "root", 0o755)
    user, group, mode = entry(host, "/home/mlops")
    assert (user, group) == ("mlops", "mlops")
    assert mode & 0o100  # traversable by its owner, mode otherwise left alone
    assert entry(host, "/home/mlops/mlflow") == ("mlops", "mlops", SETGID_DIR)
    assert entry(host, DEFAULT_ROOT) == ("mlops", "mlops", SETGID_DIR)


def test_custom_root_and_created_parents(podman_host):
    host = podman_host("artifact-store-custom")
    # An existing parent the role does not own stays as it was.
    assert entry(host, "/srv") == ("root", "root", 0o755)
    assert entry(host, "/srv/mlflow") == ("mlops", "mlflow-readers", SETGID_DIR)
    assert entry(host, CUSTOM_ROOT) == ("mlops", "mlflow-readers", SETGID_DIR)


@pytest.mark.parametrize(
    ("name", "root"), [("artifact-store-default", DEFAULT_ROOT), ("artifact-store-custom", CUSTOM_ROOT)]
)
def test_mlops_can_reach_and_write_the_root(podman_host, name, root):
    host = podman_host(name)
    probe = f"{root}/.write-probe"
    result = host.run(f"runuser -u mlops -- sh -c 'umask 0027 && touch {probe} && rm {probe}'")
    assert result.rc == 0, result.stderr


def test_manual_tree_from_prepare_was_repaired(podman_host):
    """prepare made this tree as root with 0700/0777 dirs and 0600/0666 files."""
    host = podman_host("artifact-store-default")
    for path in ("0", "0/run-by-root", "0/run-by-root/artifacts"):
        assert entry(host, f"{DEFAULT_ROOT}/{path}") == ("mlops", "mlops", SETGID_DIR), path
    for path in ("0/meta.yaml", "0/run-by-root/artifacts/model.pkl", "0/run-by-root/artifacts/notes.txt"):
        assert entry(host, f"{DEFAULT_ROOT}/{path}") == ("mlops", "mlops", FILE), path


def test_whole_tree_has_the_contract_modes(podman_host):
    host = podman_host("artifact-store-default")
    listing = host.check_output(f"find {DEFAULT_ROOT} -not -type l -printf '%y %u %g %m %p\\n'")
    wrong = [
        line
        for line in listing.splitlines()
        if not (line.startswith("d mlops mlops 2750 ") or line.startswith("f mlops mlops 640 "))
    ]
    assert wrong == []


def test_symlink_out_of_the_tree_was_not_followed(podman_host):
    host = podman_host("artifact-store-default")
    link = host.file(f"{DEFAULT_ROOT}/0/shadow-link")
    assert link.is_symlink
    assert link.user == "root"
    assert entry(host, "/etc/shadow") == ("root", "shadow", 0o640)
