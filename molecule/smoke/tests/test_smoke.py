"""The harness boots a real systemd host and converges it."""


def test_systemd_is_pid_1(podman_host):
    smoke_host = podman_host("smoke-host")
    assert smoke_host.check_output("cat /proc/1/comm") == "systemd"


def test_system_running(podman_host):
    smoke_host = podman_host("smoke-host")
    state = smoke_host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded")


def test_marker_written(podman_host):
    smoke_host = podman_host("smoke-host")
    marker = smoke_host.file("/etc/mlops-smoke")
    assert marker.exists
    assert marker.mode == 0o644
    assert marker.content_string.startswith("Debian ")
