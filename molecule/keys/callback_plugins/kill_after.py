"""Test-only callback: kill ansible-playbook (SIGKILL) right after a named task, to leave a
host exactly as a run that died at that point would (tests of interrupted rotations).

KILL_AFTER_TASK: the task name (without the role prefix); KILL_AFTER_ITEMS: for a loop, how many
items may finish first (0: the whole task). Enabled only by the test that sets them.
"""

from __future__ import annotations

import os
import signal

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: kill_after
type: aggregate
short_description: SIGKILL the run after a named task (tests of interrupted runs)
description:
  - Reads KILL_AFTER_TASK and KILL_AFTER_ITEMS from the environment.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kill_after"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._task = os.environ.get("KILL_AFTER_TASK", "")
        self._items = int(os.environ.get("KILL_AFTER_ITEMS", "0"))
        self._seen = 0

    def _matches(self, result) -> bool:
        name = result._task.get_name()
        return bool(self._task) and (name == self._task or name.endswith(" : " + self._task))

    def _kill(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def v2_runner_item_on_ok(self, result) -> None:
        if self._items and self._matches(result):
            self._seen += 1
            if self._seen >= self._items:
                self._kill()

    def v2_runner_on_ok(self, result) -> None:
        if not self._items and self._matches(result):
            self._kill()
