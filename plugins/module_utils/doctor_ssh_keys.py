"""SSH material as the doctor reads it: private keys, ~/.ssh/config and known_hosts (never key material)."""

from __future__ import annotations

import base64
import binascii
import fnmatch
import os
import re
import shlex
import struct

from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_host import read_bytes, read_text, run

KEY_TYPE_NAMES = {
    "ssh-rsa": "rsa",
    "ssh-dss": "dsa",
    "ssh-ed25519": "ed25519",
    "ecdsa-sha2-nistp256": "ecdsa",
    "ecdsa-sha2-nistp384": "ecdsa",
    "ecdsa-sha2-nistp521": "ecdsa",
    "sk-ssh-ed25519@openssh.com": "ed25519-sk",
    "sk-ecdsa-sha2-nistp256@openssh.com": "ecdsa-sk",
}
SSH_DIR_SKIP = {
    "known_hosts",
    "known_hosts.old",
    "config",
    "authorized_keys",
    "authorized_keys2",
    "environment",
    "rc",
}


def _ssh_string(blob, offset):
    """(bytes, next offset) of the length-prefixed SSH string at OFFSET of BLOB."""
    if offset + 4 > len(blob):
        raise ValueError("truncated")
    (length,) = struct.unpack(">I", blob[offset : offset + 4])
    end = offset + 4 + length
    if end > len(blob):
        raise ValueError("truncated")
    return blob[offset + 4 : end], end


def public_blob_info(blob):
    """(type name, bits) of an SSH public key blob."""
    try:
        ktype, offset = _ssh_string(blob, 0)
        name = ktype.decode("ascii", "replace")
        bits = None
        if name == "ssh-rsa":
            _exp, offset = _ssh_string(blob, offset)
            modulus, offset = _ssh_string(blob, offset)
            bits = int.from_bytes(modulus, "big").bit_length()
        elif name.startswith("ecdsa-sha2-nistp"):
            bits = int(name.rsplit("nistp", 1)[1])
        elif name == "ssh-ed25519":
            bits = 256
        return KEY_TYPE_NAMES.get(name, name), bits
    except (ValueError, IndexError):
        return "unknown", None


def private_key_info(path):
    """Describe a private key file, or None when the file is not one. Never returns key material.

    Returns {path, type, bits, encrypted, format, public (base64 blob or None)}, and pub_mismatch
    when the .pub beside it belongs to another key.
    """
    data = read_bytes(path, 64 * 1024)
    if not data or b"PRIVATE KEY-----" not in data.split(b"\n", 1)[0]:
        return None
    text = data.decode("ascii", "replace")
    info = {
        "path": path,
        "type": "unknown",
        "bits": None,
        "encrypted": False,
        "format": "pem",
        "public": None,
    }
    head = text.split("\n", 1)[0]
    if "OPENSSH PRIVATE KEY" in head:
        info["format"] = "openssh"
        _read_openssh_key(text, info)
    else:
        for marker, ktype in (("RSA", "rsa"), ("DSA", "dsa"), ("EC", "ecdsa")):
            if f"BEGIN {marker} PRIVATE KEY" in head:
                info["type"] = ktype
        if "ENCRYPTED" in text[:400]:
            info["encrypted"] = True
        if "BEGIN PRIVATE KEY" in head:
            info["type"] = "pkcs8"
    _read_public_half(path + ".pub", info)
    return info


def _read_openssh_key(text, info):
    """Fill INFO's type, bits, encryption and public blob from an OpenSSH-format private key TEXT."""
    body = "".join(line for line in text.splitlines()[1:] if line and not line.startswith("-----"))
    try:
        blob = base64.b64decode(body)
        magic = b"openssh-key-v1\x00"
        if blob.startswith(magic):
            offset = len(magic)
            cipher, offset = _ssh_string(blob, offset)
            _kdf, offset = _ssh_string(blob, offset)
            _kdfopts, offset = _ssh_string(blob, offset)
            offset += 4  # number of keys
            pub, offset = _ssh_string(blob, offset)
            info["encrypted"] = cipher != b"none"
            info["type"], info["bits"] = public_blob_info(pub)
            info["public"] = base64.b64encode(pub).decode("ascii")
    except (ValueError, TypeError, binascii.Error):
        pass


def _read_public_half(pub_path, info):
    """Take the public key from the .pub file PUB_PATH when INFO has none; note a .pub of another key."""
    pub_text = read_text(pub_path, 64 * 1024)
    if not pub_text:
        return
    fields = pub_text.split()
    if len(fields) < 2:
        return
    try:
        pub_blob = base64.b64decode(fields[1])
        ptype, bits = public_blob_info(pub_blob)
        if info["public"] is None:
            info["public"] = fields[1]
            info["type"], info["bits"] = ptype, bits
        elif info["public"] != fields[1]:
            info["pub_mismatch"] = True
    except (ValueError, binascii.Error):
        pass


def describe_key(info, home):
    """A key as the findings name it: path below ~, type, bits for RSA, passphrase."""
    name = info["path"]
    if name.startswith(home + "/"):
        name = "~" + name[len(home) :]
    text = (
        f"{name} ({info['type']}{' ' + str(info['bits']) if info['bits'] and info['type'] == 'rsa' else ''}"
    )
    if info["encrypted"]:
        text += ", passphrase"
    return text + ")"


def host_matches(patterns, host):
    """Whether HOST matches a Host line's PATTERNS (a matching !pattern excludes it)."""
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if fnmatch.fnmatchcase(host, pattern.lstrip("!")):
            if negated:
                return False
            matched = True
    return matched


def ssh_config_lookup(path, host):
    """First-value-wins view of ~/.ssh/config for HOST (Host blocks only; Match/Include noted)."""
    text = read_text(path)
    result = {"identityfile": [], "_entries": [], "_unsupported": []}
    if text is None:
        return None
    active = True
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^(\S+?)(?:\s*=\s*|\s+)(.*)$", line)
        if not match:
            continue
        key, value = match.group(1).lower(), match.group(2).strip()
        if key == "host":
            patterns = shlex.split(value) if value else []
            active = host_matches(patterns, host)
            if active and any(p not in ("*",) for p in patterns):
                result["_entries"].append(value)
            continue
        if key == "match":
            active = False
            result["_unsupported"].append("Match")
            continue
        if key == "include":
            result["_unsupported"].append("Include")
            continue
        if not active:
            continue
        value = value.strip('"')
        if key == "identityfile":
            result["identityfile"].append(value)
        else:
            result.setdefault(key, value)
    return result


def expand_ssh_path(value, home, local_user, host, remote_user):
    """An IdentityFile/UserKnownHostsFile VALUE with ~ and %d %u %h %r %% expanded, made absolute."""
    value = value.strip('"')
    if value.startswith("~/"):
        value = home + value[1:]
    elif value == "~":
        value = home
    for token, repl in (
        ("%d", home),
        ("%u", local_user),
        ("%h", host),
        ("%r", remote_user or local_user),
        ("%%", "%"),
    ):
        value = value.replace(token, repl)
    if not value.startswith("/"):
        value = os.path.join(home, value)
    return value


def known_hosts_has(module, path, name):
    """True/False whether known_hosts PATH lists NAME (plain or hashed); None if unreadable."""
    if not os.path.isfile(path):
        return False
    rc, out, _err = run(module, ["ssh-keygen", "-F", name, "-f", path], timeout=10)
    if rc == 127:  # no ssh-keygen: plain-text lines only
        text = read_text(path) or ""
        for line in text.splitlines():
            names = line.split()[0].split(",") if line.split() else []
            if name in names:
                return True
        return False
    return rc == 0 and "found" in out
