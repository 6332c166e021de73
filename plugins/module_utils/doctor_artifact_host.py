"""The doctor on the SFTP artifact host: sshd, the service account, its confinement and its keys."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import time

from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_artifact_tree import TreeChecks
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_host import (
    Identity,
    ancestors,
    is_local_address,
    listening_sockets,
    lstat,
    owner_text,
    read_text,
    run,
)
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_report import (
    TOOLKIT_KEYS_FIX,
    TOOLKIT_STORE_FIX,
    Doctor,
)


class ArtifactDoctor(Doctor, TreeChecks):
    """Read-only diagnosis of the SFTP artifact host (role=artifact)."""

    def __init__(self, module):
        """A doctor for this host, with the module's parameters."""
        super().__init__(module)
        self.discovered = {}
        self.confined = False

    def pick_target(self):
        """Choose the tracking server's target that is this host; set self.root and self.port."""
        names = {n for n in self.p["host_names"] if n}
        loopback = {"localhost", "127.0.0.1", "::1"}
        picked = None
        for cand in self.p["candidates"] or []:
            host = str(cand.get("host") or "")
            same_server = cand.get("server") and cand.get("server") in names
            if (
                host in names
                or (same_server and (host in loopback or cand.get("local")))
                or is_local_address(host)
            ):
                picked = cand
                break
        self.target = picked
        root = self.p["artifact_root"] or (picked or {}).get("path") or "/home/mlops/mlflow/mlruns"
        port = self.p["artifact_port"] or int((picked or {}).get("port") or 22)
        self.root, self.port = root, port
        self.discovered.update(artifact_root=root, port=port, from_server=(picked or {}).get("server"))
        if (
            picked
            and self.p["artifact_root"]
            and picked.get("path")
            and picked["path"] != self.p["artifact_root"]
        ):
            self.r.warn(
                "artifact_root",
                f"the tracking server {picked.get('server')} writes to {picked['path']} but "
                f"this host's artifact_store_root is {self.p['artifact_root']}",
                "make the server's URI and artifact_store_root agree",
            )

    def sshd(self):
        """Check that sshd runs and that its effective configuration lets the account use SFTP."""
        self.sshd_conf = {}
        active = None
        for unit in ("ssh.service", "sshd.service", "ssh.socket"):
            rc, out, _err = run(self.m, ["systemctl", "is-active", unit])
            if out.strip() == "active":
                active = unit
                break
        if active:
            self.r.ok("sshd", f"{active} is active")
        else:
            self.r.error(
                "sshd",
                "sshd is not running (ssh.service inactive)",
                f"systemctl enable --now ssh ({TOOLKIT_STORE_FIX})",
            )
        # The configuration sshd applies to a login as the account (Match blocks included); a
        # plain `sshd -T` where that form is refused.
        spec = f"user={self.p['account']},host=localhost,addr=127.0.0.1"
        rc, out, err = run(self.m, ["/usr/sbin/sshd", "-T", "-C", spec])
        if rc != 0:
            rc, out, err = run(self.m, ["/usr/sbin/sshd", "-T"])
        if rc != 0:
            self.r.warn(
                "sshd_config",
                f"`sshd -T` failed: {(err.strip().splitlines() or ['?'])[-1]}",
                "sshd -t shows the configuration error; /run/sshd must exist",
            )
            return
        conf = {}
        for line in out.splitlines():
            key, _, value = line.partition(" ")
            conf.setdefault(key, []).append(value)
        self.sshd_conf = conf
        ports = [int(p) for p in conf.get("port", ["22"]) if p.isdigit()]
        subsystem = [v for v in conf.get("subsystem", []) if v.split()[:1] == ["sftp"]]
        problems = self._sshd_config_problems(conf, ports, subsystem)
        if problems:
            self.r.error(
                "sshd_config",
                "sshd's effective configuration: " + "; ".join(problems),
                f"fix /etc/ssh/sshd_config(.d) ({TOOLKIT_STORE_FIX})",
            )
        else:
            self.r.ok(
                "sshd_config",
                f"sshd -T: Subsystem {subsystem[0]}, ports {ports}, PubkeyAuthentication yes, "
                f"UsePAM {conf.get('usepam', ['?'])[0]}",
            )
        if listening_sockets(self.port):
            self.r.ok("sshd_port", f"TCP port {self.port} listens")
        else:
            self.r.error(
                "sshd_port",
                f"nothing listens on TCP port {self.port}",
                f"systemctl reload ssh; check `ss -ltn` ({TOOLKIT_STORE_FIX})",
            )

    def _sshd_config_problems(self, conf, ports, subsystem):
        """What in sshd's effective configuration CONF (``sshd -T``) stops the account's SFTP logins."""
        problems = []
        if not subsystem:
            problems.append("no `Subsystem sftp`")
        if self.port not in ports:
            problems.append(f"does not listen on port {self.port} (ports {ports})")
        if conf.get("pubkeyauthentication", ["yes"])[0] != "yes":
            problems.append("PubkeyAuthentication no")
        allow_users = " ".join(conf.get("allowusers", [])).split()
        if allow_users and not any(
            fnmatch.fnmatchcase(self.p["account"], u.split("@")[0]) for u in allow_users
        ):
            problems.append(f"AllowUsers does not list {self.p['account']}")
        deny = " ".join(conf.get("denyusers", [])).split()
        if any(fnmatch.fnmatchcase(self.p["account"], u.split("@")[0]) for u in deny):
            problems.append(f"DenyUsers lists {self.p['account']}")
        return problems

    def account(self):
        """Check the service account: it exists, is not locked or expired, and has a shell SFTP works with."""
        ident = self.ident = Identity(self.p["account"])
        name = self.p["account"]
        if not ident.exists:
            self.r.error(
                "account", f"account {name} does not exist", "ansible-playbook playbooks/accounts.yml"
            )
            return
        shadow = read_text("/etc/shadow") or ""
        field = None
        for line in shadow.splitlines():
            parts = line.split(":")
            if parts and parts[0] == name and len(parts) > 1:
                field = parts[1]
                expire = parts[7] if len(parts) > 7 else ""
                if expire.isdigit() and int(expire) * 86400 < time.time():
                    self.r.error(
                        "account",
                        f"account {name} expired (shadow expire date passed): sshd refuses it",
                        f"chage -E -1 {name}",
                    )
        usepam = self.sshd_conf.get("usepam", ["yes"])[0]
        if field is not None and field.startswith("!"):
            text = f"{name}'s password field starts with '!' (locked, as useradd leaves it)"
            fix = (
                f"usermod -p '*' {name} ('*': no password, not locked; "
                "the toolkit's accounts playbook does it)"
            )
            if usepam == "no":
                self.r.error(
                    "account_locked", text + ": with UsePAM no, sshd refuses every login, keys included", fix
                )
            else:
                self.r.warn(
                    "account_locked",
                    text + ": keys work only because UsePAM is yes; a hardened sshd "
                    "(UsePAM no) refuses every login",
                    fix,
                )
        elif field is not None:
            self.r.ok(
                "account_locked",
                f"{name} is not '!'-locked (password field '{field[:1] or '(empty)'}...')"
                if field not in ("*", "")
                else f"{name} has no password and is not locked ('*')",
            )
        shell = ident.pw.pw_shell
        forced_internal = False
        self.keys_text = self.authorized_keys_lines()
        if self.keys_text:
            forced_internal = all("internal-sftp" in opts for opts, _t, _b in self.keys_text)
        if self.sshd_conf.get("forcecommand", ["none"])[0].startswith("internal-sftp"):
            forced_internal = True
        sftp_sub = " ".join(self.sshd_conf.get("subsystem", []))
        if (
            (not shell or shell.endswith(("nologin", "/false")))
            and "internal-sftp" not in sftp_sub
            and not forced_internal
        ):
            self.r.error(
                "account_shell",
                f"{name}'s shell is {shell or '(none)'}, and sshd starts the external "
                "sftp-server through the login shell: SFTP fails",
                f"usermod -s /bin/bash {name}, or force internal-sftp in authorized_keys "
                f"({TOOLKIT_KEYS_FIX})",
            )

    def authorized_keys_files(self):
        """The account's authorized_keys files, as sshd's AuthorizedKeysFile names them."""
        home = self.ident.home
        spec = " ".join(
            self.sshd_conf.get("authorizedkeysfile", [".ssh/authorized_keys .ssh/authorized_keys2"])
        )
        files = []
        for token in spec.split():
            if token.lower() == "none":
                continue
            item = self._expand(token)
            files.append(item if item.startswith("/") else os.path.join(home, item))
        return files

    def _expand(self, value):
        """VALUE of an sshd option with the %h, %u and %% tokens expanded for the account."""
        return value.replace("%h", self.ident.home).replace("%u", self.p["account"]).replace("%%", "%")

    def authorized_keys_lines(self):
        """(options, key type, base64 blob) of every key line in the authorized_keys files."""
        entries = []
        key_re = re.compile(r"(?:^|\s)((?:ssh|ecdsa|sk)-[\w@.-]+)\s+([A-Za-z0-9+/=]+)")
        for path in self.authorized_keys_files():
            text = read_text(path) or ""
            for raw in text.splitlines():
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                match = key_re.search(line)
                if not match:
                    continue
                entries.append((line[: match.start()].strip(), match.group(1), match.group(2)))
        return entries

    def authorized_keys(self):
        """Check the account's authorized keys: present, restricted, StrictModes, the server's keys."""
        if not self.ident.exists:
            return
        name = self.p["account"]
        files = self.authorized_keys_files()
        entries = self.keys_text
        if not entries:
            self.r.error(
                "authorized_keys",
                f"{' '.join(files)} holds no key: nobody can log in as {name}",
                f"authorize the server's public key ({TOOLKIT_KEYS_FIX})",
            )
        elif self.confined:
            self.r.ok(
                "authorized_keys",
                f"{len(entries)} key(s) for {name}, confined by sshd (internal-sftp in a chroot)",
            )
        else:
            open_keys = [e for e in entries if "restrict" not in e[0] and "command=" not in e[0]]
            if open_keys:
                self.r.warn(
                    "authorized_keys",
                    f"{len(open_keys)} of {len(entries)} key(s) for {name} allow a full "
                    'shell and port forwarding (no restrict,command="internal-sftp")',
                    f'prefix them with restrict,command="internal-sftp -u 0027" ({TOOLKIT_KEYS_FIX})',
                )
            else:
                self.r.ok("authorized_keys", f"{len(entries)} key(s) for {name}, all restricted")
        if self.sshd_conf.get("strictmodes", ["yes"])[0] == "yes":
            self._strict_modes(files)
        if self.target and entries:
            self._server_keys_authorized(files, entries)

    def confinement(self):
        """Check that sshd itself confines the account: SFTP only, in a chroot, keys from root's files.

        Options in an authorized_keys line are no confinement when the account can rewrite the
        file over SFTP (its own ~/.ssh): the key holder replaces the line and gets a shell.
        """
        self.confined = False
        if not self.ident.exists or not self.sshd_conf:
            return
        name = self.p["account"]
        force = self.sshd_conf.get("forcecommand", ["none"])[0]
        chroot = self.sshd_conf.get("chrootdirectory", ["none"])[0]
        missing = self._confinement_gaps(force, chroot)
        if missing:
            self.r.warn(
                "confinement",
                f"sshd does not confine {name} ({'; '.join(missing)}): whoever holds one of its keys "
                f"can rewrite the SFTP-only options of its key line over SFTP and get a shell, and "
                f"reach every file {name} can",
                f"{TOOLKIT_STORE_FIX} (Match User {name}: ForceCommand internal-sftp, ChrootDirectory, "
                "root-owned AuthorizedKeysFile)",
            )
            return
        chroot = self._expand(chroot)
        self.discovered["chroot"] = chroot
        bad = self._chroot_components_problems(chroot)
        if bad:
            self.r.error(
                "confinement",
                f"sshd refuses every SFTP login as {name}: its chroot {chroot} has components that "
                f"are not root's or are writable by others: {', '.join(bad)}",
                f"chown root and chmod go-w them ({TOOLKIT_STORE_FIX})",
            )
            return
        inside, outside = os.path.join(chroot, self.root.lstrip("/")), self.root
        try:
            same = os.path.samefile(inside, outside)
        except OSError:
            same = False
        if not same:
            self.r.error(
                "confinement",
                f"the artifact root {outside} is not at its own path inside {name}'s chroot "
                f"({inside} is not the same directory): SFTP sessions cannot reach the artifacts",
                f"bind-mount {outside} on {inside} ({TOOLKIT_STORE_FIX})",
            )
            return
        self.confined = True
        self.r.ok(
            "confinement",
            f"sshd confines {name}: {force}, chroot {chroot} (artifact root at its own path inside), "
            f"keys only from {' '.join(self.authorized_keys_files())}",
        )

    def _confinement_gaps(self, force, chroot):
        """What is missing for sshd to confine the account (FORCE and CHROOT from ``sshd -T -C``)."""
        name, home = self.p["account"], self.ident.home
        missing = []
        if not force.startswith("internal-sftp"):
            missing.append("no ForceCommand internal-sftp")
        if chroot == "none":
            missing.append("no ChrootDirectory")
        for path in self.authorized_keys_files():
            st = lstat(path)
            parent = lstat(os.path.dirname(path))
            if path.startswith(home.rstrip("/") + "/"):
                missing.append(f"keys read from {path}, in {name}'s home")
            elif st and (st.st_uid != 0 or stat.S_IMODE(st.st_mode) & 0o022):
                missing.append(f"{path} is {owner_text(st)}, not root's")
            elif parent and (parent.st_uid != 0 or stat.S_IMODE(parent.st_mode) & 0o022):
                missing.append(f"{os.path.dirname(path)} is {owner_text(parent)}, not root's")
        return missing

    @staticmethod
    def _chroot_components_problems(chroot):
        """Components of CHROOT that make sshd refuse it (missing, not root's, group/world-writable)."""
        bad = []
        probe = chroot
        while True:
            st = lstat(probe)
            if st is None:
                bad.append(f"{probe} (missing)")
            elif st.st_uid != 0 or stat.S_IMODE(st.st_mode) & 0o022:
                bad.append(f"{probe} ({owner_text(st)})")
            if probe == "/":
                break
            probe = os.path.dirname(probe)
        return bad

    def _strict_modes(self, files):
        """Report paths that make sshd (StrictModes yes) ignore the account's authorized_keys FILES.

        The file and each directory up to the home directory must not be writable by others.
        """
        name, home = self.p["account"], self.ident.home
        bad = []
        for path in files:
            if not os.path.exists(path):
                continue
            for probe in ancestors(path, home):
                st = lstat(probe)
                if st and (st.st_uid not in (0, self.ident.uid) or stat.S_IMODE(st.st_mode) & 0o022):
                    bad.append(f"{probe} ({owner_text(st)})")
        if bad:
            self.r.error(
                "strict_modes",
                f"sshd (StrictModes yes) ignores {name}'s keys: " + ", ".join(bad),
                f"chmod go-w those paths; chown {name} them",
            )
        else:
            self.r.ok("strict_modes", f"{name}'s home, ~/.ssh and authorized_keys pass StrictModes")

    def _server_keys_authorized(self, files, entries):
        """Report whether each key the tracking server logs in with is among the authorized ENTRIES."""
        name, target = self.p["account"], self.target
        blobs = {b for _o, _t, b in entries}
        for key in self.p["candidates_keys"]:
            if key.get("host") != target.get("host"):
                continue
            if key["public"] in blobs:
                self.r.ok(
                    "server_key_authorized",
                    f"{key['account']}'s key on {target.get('server')} "
                    f"({os.path.basename(key['path'])}, {key['type']}) is authorized for {name}",
                )
            else:
                self.r.error(
                    "server_key_authorized",
                    f"{key['account']}'s key on {target.get('server')} "
                    f"({key['path']}, {key['type']}) is not in {name}'s authorized_keys",
                    f"append {key['path']}.pub to {files[0] if files else '~/.ssh/authorized_keys'} "
                    f"({TOOLKIT_KEYS_FIX})",
                )

    def run(self):
        """Run every check of the artifact host; return (report, discovered)."""
        self.pick_target()
        self.sshd()
        self.account()
        self.confinement()
        self.authorized_keys()
        self.tree()
        return self.r, self.discovered
