"""Runs on the bench server with the MLflow venv's python (``python -`` on stdin).

The CPU cost of one basic-auth password check: MLflow re-checks the password on every request, and
werkzeug's default hash is scrypt. Prints the hash method and the CPU seconds of one check (mean of 5).
"""

from __future__ import annotations

import json
import sys
import time

from werkzeug.security import check_password_hash, generate_password_hash

ROUNDS = 5


def main() -> int:
    """Hash a 32-character password, time ROUNDS checks of it, print the mean as JSON."""
    hashed = generate_password_hash("x" * 32)
    started = time.process_time()
    for _ in range(ROUNDS):
        check_password_hash(hashed, "x" * 32)
    cpu = round((time.process_time() - started) / ROUNDS, 3)
    print(json.dumps({"method": hashed.split("$")[0], "cpu_s": cpu}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
