"""Documentation shared by mlflow_hand_started_info and mlflow_hand_started: the option they share."""

from __future__ import annotations


class ModuleDocFragment:
    """The C(unit) option: which processes count as started by hand."""

    DOCUMENTATION = r"""
options:
  unit:
    description: The role's systemd unit; processes in its control group are not hand-started.
    type: str
    default: mlflow.service
"""
