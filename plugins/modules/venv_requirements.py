#!/usr/bin/python
"""Create a virtualenv and install the requirements it does not meet yet, in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: venv_requirements
short_description: Make a virtualenv meet a list of requirements; pip runs only for the unmet ones
description:
  - Checks and fixes in one run. The virtualenv is created when it is missing. The installed
    distributions are read from its C(site-packages) with C(importlib.metadata) (no process is
    started for that), and each requirement is compared with C(packaging) (name and version
    specifier, the requirements of its extras, e.g. what the C(auth) extra of C(mlflow[auth]) lists,
    environment markers). A direct reference (C(name @ file:///path)) is met when a distribution of
    that name is installed.
  - pip runs only when something is unmet, and then for the unmet requirements only.
    M(ansible.builtin.pip) runs a whole C(pip install) (resolver, index or wheelhouse scan, about
    ten seconds for MLflow) on every run whenever a requirement has extras.
  - O(force_reinstall) reinstalls the met requirements as well (C(--force-reinstall --no-deps)),
    for a package built from a source tree that changed without a new version number.
  - pip's settings (index, certificate, wheelhouse) come from the task's C(environment) (C(PIP_*)).
  - Supports check mode (reports what it would install).
options:
  venv:
    description: Path of the virtualenv.
    type: path
    required: true
  requirements:
    description: PEP 508 requirements, e.g. C(mlflow[auth]==3.1.0), C(paramiko<4), C(name @ file:///src).
    type: list
    elements: str
    required: true
  virtualenv_command:
    description: Command that creates the virtualenv; the path is appended.
    type: str
    default: python3 -m venv
  extra_args:
    description: Further arguments of C(pip install).
    type: list
    elements: str
    default: []
  force_reinstall:
    description: Reinstall the requirements that are met too (C(--force-reinstall --no-deps)).
    type: bool
    default: false
  umask:
    description: Umask (octal string) of the venv creation and of pip, so that other users can read it.
    type: str
    default: "0022"
  compile_imports:
    description:
      - Modules whose byte code is written after an install, instead of pip byte-compiling every
        installed file. When given, pip runs with C(--no-compile) and then the venv's Python imports
        these modules once, which writes the byte code of exactly what they load.
      - pip's compile of everything is three quarters of an MLflow install's time (about 850 MB of
        packages); a tracking server loads a fraction of them. A module that is not warmed this way
        still works; it is compiled in memory when imported, each time, by a process that cannot
        write the venv.
    type: list
    elements: str
    default: []
author: MLflow tracking toolkit
"""

EXAMPLES = r"""
- name: Install MLflow into its virtualenv
  mlops.mlflow.venv_requirements:
    venv: /opt/mlflow/venv
    requirements: ["mlflow[auth]==3.1.0"]
    virtualenv_command: /usr/bin/python3 -m venv
"""

RETURN = r"""
unmet:
  description: The requirements that were not met (installed by this run unless in check mode).
  returned: always
  type: list
  elements: str
reinstalled:
  description: The met requirements reinstalled because of O(force_reinstall).
  returned: always
  type: list
  elements: str
venv_created:
  description: Whether the virtualenv did not exist.
  returned: always
  type: bool
"""

import glob
import os
import re
import shlex
from importlib import metadata

from ansible.module_utils.basic import AnsibleModule

try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # Debian's python3-pip carries its own copy.
    try:
        from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
        from pip._vendor.packaging.utils import canonicalize_name
    except ImportError:
        Requirement = None


def site_packages(venv: str) -> list[str]:
    """The site-packages directories of the virtualenv VENV."""
    return sorted(glob.glob(os.path.join(venv, "lib", "python3*", "site-packages")))


def installed(paths: list[str]) -> dict[str, metadata.Distribution]:
    """Canonical name -> distribution, of every distribution found in PATHS."""
    found = {}
    for dist in metadata.distributions(path=paths):
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist)
    return found


def extra_requirements(dist: metadata.Distribution, extra: str) -> list[Requirement]:
    """The requirements that DIST lists for EXTRA only (not its base requirements)."""
    out = []
    for line in dist.requires or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if (
            req.marker is not None
            and req.marker.evaluate({"extra": extra})
            and not req.marker.evaluate({"extra": ""})
        ):
            out.append(req)
    return out


def met(req: Requirement, dists: dict[str, metadata.Distribution], extra: str = "", depth: int = 0) -> bool:
    """Whether REQ (and the requirements of its extras) is met by DISTS.

    EXTRA: the extra that REQ was listed for, for its marker ("" at the top).
    """
    if req.marker is not None and not req.marker.evaluate({"extra": extra}):
        return True
    dist = dists.get(canonicalize_name(req.name))
    if dist is None:
        return False
    if not req.url and not req.specifier.contains(dist.version, prereleases=True):
        return False
    if depth > 1:
        return True
    return all(met(dep, dists, x, depth + 1) for x in req.extras for dep in extra_requirements(dist, x))


def unmet(requirements: list[str], venv: str) -> list[str]:
    """The requirements (as given) that the virtualenv VENV does not meet."""
    if Requirement is None:
        return list(requirements)
    dists = installed(site_packages(venv))
    out = []
    for spec in requirements:
        try:
            ok = met(Requirement(spec), dists)
        except InvalidRequirement:
            ok = False
        if not ok:
            out.append(spec)
    return out


def main() -> None:
    """Create the virtualenv if needed, install what is unmet, reinstall on request."""
    module = AnsibleModule(
        argument_spec={
            "venv": {"type": "path", "required": True},
            "requirements": {"type": "list", "elements": "str", "required": True},
            "virtualenv_command": {"type": "str", "default": "python3 -m venv"},
            "extra_args": {"type": "list", "elements": "str", "default": []},
            "force_reinstall": {"type": "bool", "default": False},
            "umask": {"type": "str", "default": "0022"},
            "compile_imports": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    warm = p["compile_imports"]
    bad = [name for name in warm if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", name)]
    if bad:
        module.fail_json(msg=f"compile_imports: not module names: {bad}")
    venv, python = p["venv"], os.path.join(p["venv"], "bin", "python")
    venv_created = not os.access(python, os.X_OK)
    missing = p["requirements"] if venv_created else unmet(p["requirements"], venv)
    again = [r for r in p["requirements"] if r not in missing] if p["force_reinstall"] else []
    result = {"unmet": missing, "reinstalled": again, "venv_created": venv_created}
    changed = venv_created or bool(missing) or bool(again)
    if module.check_mode or not changed:
        module.exit_json(changed=changed, **result)

    os.umask(int(p["umask"], 8))
    pip = [python, "-m", "pip", "install", *(["--no-compile"] if warm else []), *p["extra_args"]]
    steps = []
    if venv_created:
        steps.append([*shlex.split(p["virtualenv_command"]), venv])
    if missing:
        steps.append([*pip, *missing])
    if again:
        steps.append([*pip, "--force-reinstall", "--no-deps", *again])
    if warm:
        steps.append([python, "-c", "import " + ", ".join(warm)])
    for argv in steps:
        # From /, so that the warming import finds nothing in the working directory.
        rc, out, err = module.run_command(argv, cwd="/")
        if rc != 0:
            module.fail_json(msg=f"{' '.join(argv)} failed (rc {rc})", stdout=out, stderr=err, **result)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
