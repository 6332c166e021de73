"""The tracking server's systemd unit, its port, exposure and GET /health."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_host import listening_sockets
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_report import TOOLKIT_SERVER_FIX
from ansible_collections.mlops.mlflow.plugins.module_utils.mlflow_processes import process_cgroup

# `--host` values that bind every interface (compared with, never bound to).
ALL_INTERFACES = ("0.0.0.0", "::", "")  # noqa: S104


class ServiceChecks:
    """Checks of the unit, the port and /health."""

    def check_service(self):
        """Check the unit: loaded, active, running the server seen, enabled at boot."""
        props = self.props
        unit = self.p["unit"]
        loaded = bool(props) and props.get("LoadState") == "loaded"
        in_unit = False
        if self.main_pid:
            cgroup = process_cgroup(self.main_pid)
            in_unit = f"/{unit}" in cgroup
        if not loaded:
            if props is None:
                self.r.warn(
                    "service",
                    "systemctl is not usable here: unit state unknown",
                    "run the doctor on the host itself (systemd)",
                )
                return
            msg = f"there is no {unit}"
            if self.main_pid:
                msg += (
                    f": the server (pid {self.main_pid}) was started by hand from a shell, so it stops at "
                    "logout/reboot and nothing restarts it after a crash"
                )
            self.r.warn(
                "service", msg, f"install {unit} ({TOOLKIT_SERVER_FIX}) and stop the hand-started server"
            )
            return
        active, enabled = props.get("ActiveState"), props.get("UnitFileState")
        if active != "active":
            self.r.error(
                "service",
                f"{unit} is {active}/{props.get('SubState')}",
                f"journalctl -u {unit} -n 50; systemctl restart {unit}",
            )
        elif self.main_pid and not in_unit:
            self.r.warn(
                "service",
                f"{unit} is active but the `mlflow server` on pid {self.main_pid} runs outside it "
                "(started by hand)",
                f"kill {self.main_pid} and keep {unit} only",
            )
        else:
            self.r.ok(
                "service",
                f"{unit} is active (pid {props.get('MainPID')}) as user {props.get('User') or 'root'}",
            )
        if enabled not in ("enabled", "enabled-runtime", "static", "alias", "indirect"):
            self.r.warn(
                "service", f"{unit} is {enabled}: it does not start at boot", f"systemctl enable {unit}"
            )
        elif active == "active":
            self.r.ok("service_enabled", f"{unit} is {enabled} (starts at boot)")

    def check_port_and_health(self):
        """Check the port, who can reach it, and that GET /health answers 200."""
        try:
            port = int(self.conf["port"])
        except ValueError:
            self.r.error("port", f"port '{self.conf['port']}' is not a number", "pass --port 5000")
            return
        expected = self.p["port"]
        if expected and expected != port:
            self.r.warn(
                "port",
                f"the server uses port {port}, the inventory says {expected} (mlflow_port)",
                "make them agree (mlflow_port, or --port of the server)",
            )
        if not self.discovered["pids"]:
            return
        addrs = listening_sockets(port)
        if not addrs:
            self.r.error(
                "port",
                f"nothing listens on TCP port {port}",
                f"journalctl -u {self.p['unit']} -n 50 (another process may hold the port, or the server "
                "is still starting: /health can take 15 s)",
            )
            return
        bind = self.conf["host"]
        self.r.ok("port", f"TCP port {port} listens on {', '.join(sorted(set(addrs)))} (--host {bind})")
        if bind in ALL_INTERFACES and self.conf.get("app_name") != "basic-auth":
            self.r.warn(
                "exposure",
                f"--host {bind} without --app-name basic-auth: anyone who reaches port {port} "
                "can read, change and delete every experiment",
                "enable authentication (mlflow_auth_enabled: true) or bind to 127.0.0.1 behind a proxy",
            )
        elif bind in ALL_INTERFACES:
            self.r.ok("exposure", f"--host {bind} with --app-name basic-auth: the API asks for a login")
        else:
            self.r.ok("exposure", f"--host {bind}: reachable on that address only")
        target = "127.0.0.1" if bind in (*ALL_INTERFACES, "localhost") else bind
        if ":" in target:
            target = f"[{target}]"
        url = f"http://{target}:{port}/health"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        start = time.monotonic()
        try:
            with opener.open(url, timeout=5) as resp:
                body = resp.read(200).decode("utf-8", "replace").strip()
                status = resp.status
        except urllib.error.HTTPError as exc:
            status, body = exc.code, ""
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            self.r.error(
                "health",
                f"GET {url} failed: {reason}",
                f"journalctl -u {self.p['unit']} -n 50 (the server may still be starting: /health "
                "answers 10-20 s after a start)",
            )
            return
        took = time.monotonic() - start
        if status == 200:
            self.r.ok("health", f"GET {url} -> 200 {body[:20]} in {took:.2f} s")
        else:
            self.r.error("health", f"GET {url} -> HTTP {status}", f"journalctl -u {self.p['unit']} -n 50")
