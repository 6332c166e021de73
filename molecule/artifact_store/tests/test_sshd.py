"""sshd runs with a valid configuration, the role's drop-in and the ports it promises."""

import pytest

HOSTS = ["artifact-store-default", "artifact-store-custom"]
PORTS = {"artifact-store-default": [22], "artifact-store-custom": [22, 2222]}
DROPIN = "/etc/ssh/sshd_config.d/50-mlflow-artifact-store.conf"


@pytest.mark.parametrize("name", HOSTS)
def test_sshd_running_and_enabled(podman_host, name):
    ssh = podman_host(name).service("ssh")
    assert ssh.is_running
    assert ssh.is_enabled


@pytest.mark.parametrize("name", HOSTS)
def test_sshd_configuration_is_valid(podman_host, name):
    result = podman_host(name).run("/usr/sbin/sshd -t")
    assert result.rc == 0, result.stderr


@pytest.mark.parametrize("name", HOSTS)
def test_dropin_is_managed_and_minimal(podman_host, name):
    dropin = podman_host(name).file(DROPIN)
    assert dropin.is_file
    assert (dropin.user, dropin.group, dropin.mode) == ("root", "root", 0o644)
    text = dropin.content_string
    assert text.startswith("#\n# Ansible managed")
    lines = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    # Debian's sshd_config defines `Subsystem sftp`; a second one makes sshd refuse its config.
    assert not [words for words in lines if words[0].lower() == "subsystem"]
    assert ["PubkeyAuthentication", "yes"] in lines
    ports = [int(words[1]) for words in lines if words[0] == "Port"]
    assert ports == ([] if PORTS[name] == [22] else PORTS[name])
    # The account's confinement: one Match block, last in the file.
    match = [i for i, words in enumerate(lines) if words[0] == "Match"]
    assert match and lines[match[0]] == ["Match", "User", "mlops"]
    assert ["ChrootDirectory", "/srv/mlflow-sftp"] in lines[match[0] :]


@pytest.mark.parametrize("name", HOSTS)
def test_effective_configuration_confines_the_artifact_account(podman_host, name):
    host = podman_host(name)
    account = dict(
        line.split(" ", 1)
        for line in host.check_output(
            "/usr/sbin/sshd -T -C user=mlops,host=localhost,addr=127.0.0.1"
        ).splitlines()
    )
    assert account["authorizedkeysfile"] == "/etc/ssh/authorized_keys/%u"
    root = {
        "artifact-store-default": "/home/mlops/mlflow/mlruns",
        "artifact-store-custom": "/srv/mlflow/artifacts",
    }[name]
    assert account["forcecommand"] == f"internal-sftp -u 0027 -d {root}"
    assert account["chrootdirectory"] == "/srv/mlflow-sftp"
    for option in ("allowtcpforwarding", "allowstreamlocalforwarding", "allowagentforwarding"):
        assert account[option] == "no", option
    for option in ("x11forwarding", "permittty", "permittunnel", "permituserrc", "passwordauthentication"):
        assert account[option] == "no", option
    # Everyone else keeps the global configuration (the Match block ends with the drop-in).
    other = dict(
        line.split(" ", 1)
        for line in host.check_output(
            "/usr/sbin/sshd -T -C user=root,host=localhost,addr=127.0.0.1"
        ).splitlines()
    )
    assert other["forcecommand"] == "none" and other["chrootdirectory"] == "none"
    assert other["authorizedkeysfile"] == ".ssh/authorized_keys .ssh/authorized_keys2"


@pytest.mark.parametrize("name", HOSTS)
def test_chroot_and_keys_dir_are_roots(podman_host, name):
    host = podman_host(name)
    for path in ("/srv", "/srv/mlflow-sftp", "/etc/ssh/authorized_keys"):
        d = host.file(path)
        assert (d.user, d.group, d.mode) == ("root", "root", 0o755), path
    root = {
        "artifact-store-default": "/home/mlops/mlflow/mlruns",
        "artifact-store-custom": "/srv/mlflow/artifacts",
    }[name]
    parent = "/srv/mlflow-sftp"
    for part in root.split("/")[1:-1]:
        parent = f"{parent}/{part}"
        d = host.file(parent)
        assert (d.user, d.group, d.mode) == ("root", "root", 0o755), parent
    # The bind mount: the same directory (device and inode) at the same path inside the chroot,
    # and in /etc/fstab so that it comes back after a reboot.
    same = host.check_output(f"stat -c '%d:%i' {root} /srv/mlflow-sftp{root} | uniq | wc -l")
    assert same == "1"
    assert (
        host.check_output(f"findmnt -rn -o TARGET --target /srv/mlflow-sftp{root}")
        == f"/srv/mlflow-sftp{root}"
    )
    fstab = [line.split() for line in host.file("/etc/fstab").content_string.splitlines()]
    assert [root, f"/srv/mlflow-sftp{root}", "none", "bind", "0", "0"] in fstab


@pytest.mark.parametrize("name", HOSTS)
def test_effective_configuration_has_sftp_and_ports(podman_host, name):
    effective = podman_host(name).check_output("/usr/sbin/sshd -T").splitlines()
    assert any(line.startswith("subsystem sftp ") for line in effective)
    assert sorted(int(line.split()[1]) for line in effective if line.startswith("port ")) == PORTS[name]


@pytest.mark.parametrize("name", HOSTS)
def test_listening_on_every_port(podman_host, name):
    host = podman_host(name)
    for port in PORTS[name]:
        assert host.socket(f"tcp://0.0.0.0:{port}").is_listening, port
