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
