"""The doctor's findings: one entry per check, with a level, a message and the fix."""

from __future__ import annotations

# The fix that names the toolkit's playbook for each tier.
TOOLKIT_SERVER_FIX = "run the toolkit: ansible-playbook playbooks/tracking_server.yml"
TOOLKIT_KEYS_FIX = "ansible-playbook playbooks/keys.yml"
TOOLKIT_STORE_FIX = "ansible-playbook playbooks/artifact_store.yml"


class Doctor:
    """What every doctor holds: the module (self.m), its parameters (self.p) and the report (self.r)."""

    def __init__(self, module):
        """A doctor run for MODULE, with an empty report."""
        self.m = module
        self.p = module.params
        self.r = Report()


class Report:
    """The findings of one doctor run, in the order the checks made them."""

    def __init__(self):
        """An empty report."""
        self.findings = []

    def add(self, level, check, message, fix=""):
        """Record a finding of LEVEL (ok, warn, error) for CHECK; an ok finding carries no fix."""
        self.findings.append(
            {"level": level, "check": check, "message": message, "fix": fix if level != "ok" else ""}
        )

    def ok(self, check, message):
        """Record that CHECK found nothing wrong."""
        self.add("ok", check, message)

    def warn(self, check, message, fix):
        """Record a problem that does not stop MLflow yet, with its FIX."""
        self.add("warn", check, message, fix)

    def error(self, check, message, fix):
        """Record a problem that breaks MLflow (or will), with its FIX."""
        self.add("error", check, message, fix)

    def lines(self):
        """The findings as ``[LEVEL] check: message -> fix`` lines."""
        out = []
        for f in self.findings:
            line = f"[{f['level'].upper()}] {f['check']}: {f['message']}"
            if f["fix"]:
                line += f" -> {f['fix']}"
            out.append(line)
        return out

    def summary(self):
        """How many findings there are of each level."""
        counts = {"error": 0, "warn": 0, "ok": 0}
        for f in self.findings:
            counts[f["level"]] += 1
        return counts
