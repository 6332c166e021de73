"""The command line of the mlflow role's helper scripts with subcommands: arguments in, one JSON line out.

Used by ``mlflow_db.py`` and ``mlflow_adopt.py``, which run on the tracking host with the MLflow venv's
python. The role copies this file beside them (``MLFLOW_VENV/libexec``, through the link
roles/mlflow/files/libexec/helper_cli.py), so it imports nothing from Ansible and nothing beyond the
standard library.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable


def command_parser(doc: str | None) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """A parser described by the script's DOC, and its required subcommands."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser, parser.add_subparsers(dest="command", required=True)


def print_json(command: Callable[[], tuple[dict, int]], error_code: int) -> int:
    """Run COMMAND and print its result as one JSON line; the exit code it gives.

    An exception prints {"error": "Type: message"} instead, and the exit code is ERROR_CODE.
    """
    try:
        result, code = command()
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return error_code
    print(json.dumps(result))
    return code
