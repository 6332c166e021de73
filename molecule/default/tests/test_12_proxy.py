"""The TLS proxy in front of MLflow: TLS only, the toolkit's CA, loopback MLflow, failed-login limit.

HAProxy on default-server publishes MLflow (127.0.0.1:5000) on 443. Every request here comes from
another host of the scenario, as a training machine's would.
"""

import json
import subprocess

from stack import ARTIFACT, CLIENT, PROJECT_DIR, SERVER

CA = PROJECT_DIR / "credentials" / "ca" / "ca.crt"
CLIENT_CA = "/etc/mlflow-client/tracking-ca.crt"
PASSWORD = PROJECT_DIR / "credentials" / SERVER / "admin_password"
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"
# The role's defaults: 10 failed logins per 60 s and source address.
FAIL_LIMIT = 10

PROBE = r"""
import base64, json, socket, ssl, sys, urllib.error, urllib.request
what, url, cafile, user, password, count = sys.argv[1:7]
if what == "tls":
    host, port = url.split(":")
    context = ssl.create_default_context(cafile=cafile)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            cert = tls.getpeercert()
            print(json.dumps({"version": tls.version(), "san": [v for _, v in cert["subjectAltName"]],
                              "issuer": dict(x[0] for x in cert["issuer"])}))
elif what == "plain":
    # Plain HTTP to a port: the answer's first bytes, or the error.
    host, port = url.split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            print(json.dumps({"answer": raw.recv(200).decode(errors="replace")}))
    except OSError as exc:
        print(json.dumps({"error": type(exc).__name__}))
else:
    context = ssl.create_default_context(cafile=cafile)
    statuses = []
    for _ in range(int(count)):
        req = urllib.request.Request(url)
        if user:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            req.add_header("Authorization", "Basic " + token)
        try:
            with urllib.request.urlopen(req, timeout=60, context=context) as r:
                statuses.append(r.status)
        except urllib.error.HTTPError as e:
            statuses.append(e.code)
    print(json.dumps(statuses))
"""


def probe(
    host, what: str, target: str, *, cafile: str = "", user: str = "", password: str = "", count: int = 1
):
    out = host.run("python3 -c %s %s %s %s %s %s %s", PROBE, what, target, cafile, user, password, str(count))
    assert out.rc == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def backend_4xx(server) -> int:
    """4xx answers MLflow itself gave (HAProxy's statistics for the backend, not its own 429s)."""
    script = (
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); "
        "s.sendall(b'show stat\\n'); print(b''.join(iter(lambda: s.recv(65536), b'')).decode())"
    )
    csv = server.check_output("python3 -c %s", script).splitlines()
    header = csv[0].lstrip("# ").split(",")
    for line in csv[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == "mlflow" and row.get("svname") == "BACKEND":
            return int(row["hrsp_4xx"])
    raise AssertionError("no mlflow backend in HAProxy's statistics")


def test_tls_with_the_toolkit_ca_and_the_hosts_names(podman_host):
    client = podman_host(CLIENT)
    seen = probe(client, "tls", f"{SERVER}:443", cafile=CLIENT_CA)
    assert seen["version"] in ("TLSv1.2", "TLSv1.3")
    assert seen["issuer"]["commonName"] == "MLflow toolkit CA"
    server_ip = podman_host(SERVER).check_output("hostname -I").split()[0]
    assert {SERVER, "localhost", "127.0.0.1", server_ip} <= set(seen["san"]), seen["san"]
    # And by address: the certificate holds the host's IPv4 address, so hostname checks pass.
    assert probe(client, "tls", f"{server_ip}:443", cafile=CLIENT_CA)["san"] == seen["san"]


def test_ca_key_stays_on_the_controller_and_the_server_key_is_root_only(podman_host):
    server = podman_host(SERVER)
    key = PROJECT_DIR / "credentials" / "ca" / "ca.key"
    assert key.stat().st_mode & 0o777 == 0o600
    pem = server.file("/etc/haproxy/tls/mlflow.pem")
    assert (pem.user, pem.group, pem.mode) == ("root", "root", 0o600)
    assert server.file("/etc/haproxy/tls").mode == 0o700
    assert "PRIVATE KEY" in pem.content_string
    # The CA's key never leaves the controller.
    ca_key_body = key.read_text().splitlines()[1]
    for host in (SERVER, CLIENT):
        assert podman_host(host).run(f"grep -rqF {ca_key_body} /etc").rc != 0


def test_plain_http_gets_no_answer_and_mlflow_is_loopback_only(podman_host):
    client = podman_host(CLIENT)
    # Plain HTTP on the published port: the TLS listener closes the connection, no HTTP answer.
    plain = probe(client, "plain", f"{SERVER}:443")
    assert not plain.get("answer", "").startswith("HTTP/"), plain
    # MLflow's own port does not answer another host at all.
    assert probe(client, "plain", f"{SERVER}:5000") == {"error": "ConnectionRefusedError"}


def test_health_and_auth_through_the_proxy(podman_host):
    client = podman_host(CLIENT)
    base = f"https://{SERVER}"
    assert probe(client, "get", f"{base}/health", cafile=CLIENT_CA) == [200]
    assert probe(client, "get", base + SEARCH, cafile=CLIENT_CA) == [401]
    password = PASSWORD.read_text().strip()
    assert probe(client, "get", base + SEARCH, cafile=CLIENT_CA, user="admin", password=password) == [200]


def test_a_burst_of_wrong_passwords_gets_429_and_never_reaches_mlflow(podman_host):
    server, artifact, client = podman_host(SERVER), podman_host(ARTIFACT), podman_host(CLIENT)
    subprocess.run(["podman", "cp", str(CA), f"{ARTIFACT}:/tmp/ca.crt"], check=True)
    url = f"https://{SERVER}{SEARCH}"
    before = backend_4xx(server)
    statuses = probe(
        artifact, "get", url, cafile="/tmp/ca.crt", user="admin", password="wrong-password-1", count=25
    )
    assert statuses == [401] * FAIL_LIMIT + [429] * (25 - FAIL_LIMIT), statuses
    # MLflow checked exactly FAIL_LIMIT wrong passwords (scrypt, ~0.13 s of CPU each), not 25.
    assert backend_4xx(server) - before == FAIL_LIMIT
    # The right password from the blocked address is refused too, until the window passes ...
    password = PASSWORD.read_text().strip()
    assert probe(artifact, "get", url, cafile="/tmp/ca.crt", user="admin", password=password) == [429]
    # ... while another address logs in as usual.
    assert probe(client, "get", url, cafile=CLIENT_CA, user="admin", password=password) == [200]
