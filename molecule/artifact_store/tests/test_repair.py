"""A deliberately broken tree is repaired (exact counts), then a right tree yields no change;
check mode reports the same repair without doing it. Symlinks out of the tree are not followed."""

from artifact_store_helpers import DEFAULT_HOST, DEFAULT_ROOT, SCENARIO_DIR, recap, repair_report
from conftest import run_playbook

BROKEN = f"{DEFAULT_ROOT}/9"
LIMIT = ("--limit", DEFAULT_HOST)
# 4 wrong directories and 3 wrong files; ok.txt is already right and must not be counted.
BREAK = f"""set -e
r={BROKEN}
rm -rf "$r"
mkdir -p "$r/run-a/artifacts" "$r/run-b"
echo a > "$r/run-a/artifacts/root.bin"
echo b > "$r/run-a/artifacts/mlops-644.txt"
echo c > "$r/run-b/group-root.txt"
echo d > "$r/run-b/ok.txt"
ln -s /etc/passwd "$r/run-a/passwd-link"
chown root:root "$r" "$r/run-a" "$r/run-b" "$r/run-a/artifacts/root.bin"
chown mlops:mlops "$r/run-a/artifacts" "$r/run-a/artifacts/mlops-644.txt" "$r/run-b/ok.txt"
chown mlops:root "$r/run-b/group-root.txt"
chown -h root:root "$r/run-a/passwd-link"
chmod 0755 "$r" "$r/run-a/artifacts"
chmod 0700 "$r/run-a"
chmod 0640 "$r/run-b/group-root.txt" "$r/run-b/ok.txt"
chmod 0600 "$r/run-a/artifacts/root.bin"
chmod 0644 "$r/run-a/artifacts/mlops-644.txt"
chmod 0000 "$r/run-b"
"""


def listing(host):
    return host.check_output(f"find {BROKEN} -printf '%P %y %u %g %m\\n' | sort").splitlines()


def test_check_mode_reports_the_repair_and_changes_nothing(podman_host):
    host = podman_host(DEFAULT_HOST)
    host.check_output(BREAK)
    before = listing(host)
    result = run_playbook(SCENARIO_DIR, "converge.yml", *LIMIT, "--check")
    assert repair_report(result.stdout)[2:] == (4, 3)
    assert recap(result.stdout, DEFAULT_HOST)["changed"] >= 1
    assert listing(host) == before
    host.check_output(f"rm -rf {BROKEN}")


def test_broken_tree_is_repaired_then_left_alone(podman_host):
    host = podman_host(DEFAULT_HOST)
    host.check_output(BREAK)
    passwd_before = host.check_output("stat -c '%U %G %a' /etc/passwd")

    first = run_playbook(SCENARIO_DIR, "converge.yml", *LIMIT)
    assert repair_report(first.stdout)[2:] == (4, 3)
    # Only the tree task changed something.
    assert recap(first.stdout, DEFAULT_HOST)["changed"] == 1
    assert listing(host) == [
        " d mlops mlops 2750",
        "run-a d mlops mlops 2750",
        "run-a/artifacts d mlops mlops 2750",
        "run-a/artifacts/mlops-644.txt f mlops mlops 640",
        "run-a/artifacts/root.bin f mlops mlops 640",
        "run-a/passwd-link l root root 777",
        "run-b d mlops mlops 2750",
        "run-b/group-root.txt f mlops mlops 640",
        "run-b/ok.txt f mlops mlops 640",
    ]
    assert host.check_output("stat -c '%U %G %a' /etc/passwd") == passwd_before == "root root 644"

    second = run_playbook(SCENARIO_DIR, "converge.yml", *LIMIT)
    dirs, files, dirs_fixed, files_fixed = repair_report(second.stdout)
    assert (dirs_fixed, files_fixed) == (0, 0)
    assert dirs >= 5 and files >= 4
    assert recap(second.stdout, DEFAULT_HOST)["changed"] == 0
    host.check_output(f"rm -rf {BROKEN}")


CUSTOM_HOST = "artifact-store-custom"
CUSTOM_ROOT = "/srv/mlflow/artifacts"
DROPIN = "/etc/ssh/sshd_config.d/50-mlflow-artifact-store.conf"
CHROOT_VIEW = f"/srv/mlflow-sftp{CUSTOM_ROOT}"
# Everything the role manages on the host, damaged at once: the drop-in's content (its Port 2222
# line and the chroot of the Match block) and mode, sshd stopped and disabled, /run/sshd gone, a
# package removed, the tree's modes, the chroot (mode, a parent's owner, the bind mount and its
# fstab line) and the directory of the root-owned keys.
DAMAGE = f"""set -e
sed -i '/^Port 2222$/d; /ChrootDirectory/d' {DROPIN}
umount {CHROOT_VIEW}
sed -i '\\|{CHROOT_VIEW}|d' /etc/fstab
chmod 0777 /srv/mlflow-sftp
chown mlops /srv/mlflow-sftp/srv
chmod 0775 /etc/ssh/authorized_keys
chmod 0600 {DROPIN}
systemctl disable --now ssh.service 2>/dev/null
rm -rf /run/sshd
dpkg --remove --force-depends openssh-sftp-server >/dev/null 2>&1
chmod 0777 {CUSTOM_ROOT}
echo x > {CUSTOM_ROOT}/hand-made.txt
chmod 0606 {CUSTOM_ROOT}/hand-made.txt
"""


def managed_state(host) -> dict:
    """What the damage touches, as the role leaves it."""
    ssh = host.service("ssh")
    dropin = host.file(DROPIN)
    return {
        "dropin": (dropin.sha256sum, dropin.user, dropin.group, dropin.mode),
        "sshd": (ssh.is_running, ssh.is_enabled),
        "run_sshd": host.file("/run/sshd").is_directory,
        "sftp_server": host.package("openssh-sftp-server").is_installed,
        "port_2222": host.socket("tcp://0.0.0.0:2222").is_listening,
        "root_mode": host.file(CUSTOM_ROOT).mode,
        "chroot": host.check_output("stat -c '%n %U %G %a' /srv/mlflow-sftp /srv/mlflow-sftp/srv"),
        "bind_mount": host.run(f"findmnt -rn -o TARGET {CHROOT_VIEW}").stdout.strip(),
        "fstab": host.file("/etc/fstab").content_string,
        "keys_dir": host.file("/etc/ssh/authorized_keys").mode,
        # (A failing `sshd -T`, e.g. without /run/sshd, prints nothing: damaged too.)
        "confined": host.run(
            "sshd -T -C user=mlops,host=localhost,addr=127.0.0.1 | grep -E '^(chrootdirectory|forcecommand) '"
        ).stdout,
    }


def test_damaged_host_is_repaired_by_one_converge_then_left_alone(podman_host):
    host = podman_host(CUSTOM_HOST)
    limit = ("--limit", CUSTOM_HOST)
    before = managed_state(host)
    assert before["sshd"] == (True, True) and before["port_2222"] and before["sftp_server"]

    host.check_output(DAMAGE)
    damaged = managed_state(host)
    for what in before:
        assert damaged[what] != before[what], f"{what} was not damaged"

    repair = run_playbook(SCENARIO_DIR, "converge.yml", *limit)
    assert recap(repair.stdout, CUSTOM_HOST)["changed"] >= 8
    assert managed_state(host) == before
    assert host.file(f"{CUSTOM_ROOT}/hand-made.txt").mode == 0o640

    again = run_playbook(SCENARIO_DIR, "converge.yml", *limit)
    assert recap(again.stdout, CUSTOM_HOST)["changed"] == 0
    host.check_output(f"rm -f {CUSTOM_ROOT}/hand-made.txt")
