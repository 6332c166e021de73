"""A real SFTP login as mlops writes into the artifact root, with the tree's owner, group and modes.

The key is a test fixture: generated in the container and authorized for mlops the way the
mlops_ssh role does it (in root's /etc/ssh/authorized_keys/mlops). Host keys are checked. The
sessions are chrooted (sshd's Match block): the artifact root keeps its absolute path inside.
"""

import base64
import io

import paramiko
import pytest
from artifact_store_helpers import HOSTS, KEY, KNOWN_HOSTS, PAYLOAD, sftp_ready  # noqa: F401 (fixture)
from conftest import container_ip

# Every test here logs in with the key the fixture authorizes.
pytestmark = pytest.mark.usefixtures("sftp_ready")
CASES = [(name, port) for name, (_root, _group, ports) in HOSTS.items() for port in ports]


@pytest.mark.parametrize(("name", "port"), CASES)
def test_sftp_write_as_mlops(podman_host, name, port):
    host = podman_host(name)
    root, group, _ports = HOSTS[name]
    target = f"{root}/sftp-test-{port}"
    host.check_output(f"rm -rf {target}")
    batch = f"mkdir {target}\nput {PAYLOAD} {target}/artifact.bin\nls -l {target}\n"
    host.check_output(f"printf '{batch}' > /root/artifact_store_batch")
    result = host.run(
        f"sftp -b /root/artifact_store_batch -i {KEY} -o IdentitiesOnly=yes -o BatchMode=yes "
        f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={KNOWN_HOSTS} -P {port} mlops@localhost"
    )
    assert result.rc == 0, result.stdout + result.stderr

    directory = host.file(target)
    assert (directory.user, directory.group, directory.mode) == ("mlops", group, 0o2750)
    artifact = host.file(f"{target}/artifact.bin")
    assert (artifact.user, artifact.group, artifact.mode) == ("mlops", group, 0o640)
    assert artifact.sha256sum == host.file(PAYLOAD).sha256sum


def test_operators_read_and_others_do_not(podman_host):
    host = podman_host("artifact-store-custom")
    artifact = "/srv/mlflow/artifacts/sftp-test-2222/artifact.bin"
    if not host.file(artifact).exists:
        pytest.fail("test_sftp_write_as_mlops[artifact-store-custom-2222] did not leave its artifact")
    assert host.run(f"runuser -u operator1 -- cat {artifact} > /dev/null").rc == 0
    assert host.run(f"runuser -u nobody -- cat {artifact} > /dev/null").rc != 0


def test_paramiko_over_the_network_nested_run_dirs(podman_host):
    """What MLflow's SFTP store does, from another machine: mkdir a run's tree, put, read back."""
    host = podman_host("artifact-store-custom")
    root = HOSTS["artifact-store-custom"][0]
    address = container_ip("artifact-store-custom")
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(host.check_output(f"cat {KEY}")))
    keytype, blob = host.check_output("cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2]
    client = paramiko.SSHClient()
    host_key = paramiko.PKey.from_type_string(keytype, base64.b64decode(blob))
    client.get_host_keys().add(f"[{address}]:2222", keytype, host_key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    host.check_output(f"rm -rf {root}/7")
    client.connect(
        address, port=2222, username="mlops", pkey=key, look_for_keys=False, allow_agent=False, timeout=15
    )
    try:
        sftp = client.open_sftp()
        path = root
        for part in ("7", "0123abcd", "artifacts"):
            path = f"{path}/{part}"
            sftp.mkdir(path)
        with sftp.open(f"{path}/metrics.json", "w") as handle:
            handle.write(b'{"accuracy": 0.9}\n')
        with sftp.open(f"{path}/metrics.json") as handle:
            assert handle.read() == b'{"accuracy": 0.9}\n'
    finally:
        client.close()
    listing = host.check_output(f"find {root}/7 -printf '%y %u %g %m\\n'").splitlines()
    assert listing == ["d mlops mlflow-readers 2750"] * 3 + ["f mlops mlflow-readers 640"]
