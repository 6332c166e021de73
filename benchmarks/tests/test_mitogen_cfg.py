"""ansible-mitogen.cfg (the opt-in Mitogen strategy) is ansible.cfg plus the two Mitogen settings.

Ansible reads one configuration file only, so the opt-in file is a full copy; these tests fail
when it drifts from ansible.cfg, or when its strategy_plugins path does not hold Mitogen's
strategy in this checkout's .venv (e.g. after a change of the venv's Python version).
"""

from __future__ import annotations

import configparser
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MITOGEN_ONLY = {"strategy", "strategy_plugins"}


def read(name: str) -> configparser.ConfigParser:
    """An Ansible ini file as Ansible reads it (no interpolation)."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO / name)
    return cfg


def settings(cfg: configparser.ConfigParser) -> dict[tuple[str, str], str]:
    """Every (section, key) with its value."""
    return {(s, k): v for s in cfg.sections() for k, v in cfg.items(s, raw=True)}


def test_same_settings_as_ansible_cfg() -> None:
    """Every setting of ansible.cfg, with the same value; nothing else but the Mitogen ones."""
    base, mitogen = settings(read("ansible.cfg")), settings(read("ansible-mitogen.cfg"))
    extra = {k: v for k, v in mitogen.items() if k not in base}
    assert {k: v for k, v in mitogen.items() if k in base} == base
    assert set(extra) == {("defaults", key) for key in MITOGEN_ONLY}
    assert extra[("defaults", "strategy")] == "mitogen_linear"


def test_strategy_plugins_path_holds_mitogen_linear() -> None:
    """The relative strategy_plugins path (relative to the file) holds mitogen_linear.py."""
    path = read("ansible-mitogen.cfg")["defaults"]["strategy_plugins"]
    assert (REPO / path / "mitogen_linear.py").is_file(), f"{path}: install requirements.txt (mitogen)"
