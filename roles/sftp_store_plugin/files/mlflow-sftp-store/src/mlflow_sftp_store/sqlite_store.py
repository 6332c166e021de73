"""MLflow's SQLAlchemy tracking store for ``sqlite://`` URIs, with ``log_batch`` metrics written in
bulk.

MLflow 3.17's ``SqlAlchemyStore._log_metrics_once`` builds one ORM object per metric (up to 1,000
per ``log_batch``) and lets the unit of work flush them; on a 2-core host that is ~0.2 s of CPU per
1,000-metric batch, nearly all of the request. This subclass writes the same rows with one
SQLAlchemy Core ``executemany`` and updates ``latest_metrics`` with one select and at most one
insert and one update, in the same transaction (~0.06 s). Everything else is MLflow's code:

- validation (``_validate_metric``), value sanitising (NaN, +/-inf) and in-batch de-duplication
  are the stock ones, in the same order, so errors and stored values are identical;
- single metrics (``log_metric``) take the stock path;
- a batch that repeats an already stored metric (primary-key conflict) is rolled back and redone
  by the stock implementation, which has the de-duplicating recovery;
- workspaces (``MLFLOW_ENABLE_WORKSPACES``), ``MLFLOW_SQLITE_BULK_METRICS=false`` and an MLflow
  without ``_log_metrics_once`` (older releases) get MLflow's own store class, unchanged.
"""

from __future__ import annotations

import logging
import os
from typing import Any

BULK_ENV = "MLFLOW_SQLITE_BULK_METRICS"
# mlflow.server.constants.READ_REPLICA_BACKEND_STORE_URI_ENV_VAR; importing it would load the
# whole server package (Flask app included) into every client that opens a sqlite store.
_READ_REPLICA_ENV = "_MLFLOW_SERVER_READ_REPLICA_BACKEND_STORE"
_IN_CLAUSE = 500  # keys per IN (...) list, as MLflow does
_store_class: type | None = None
# A child of MLflow's logger, so that the server's log (journal) shows which store it runs.
_log = logging.getLogger("mlflow.store.tracking.mlflow_sftp_store")


def _newer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """MLflow's order for latest_metrics: strictly later (step, timestamp, value) wins."""
    return (a["step"], a["timestamp"], a["value"]) > (b["step"], b["timestamp"], b["value"])


def bulk_enabled() -> bool:
    return os.environ.get(BULK_ENV, "true").strip().lower() not in ("0", "false", "no", "off")


def _bulk_store_class() -> type | None:
    """Defined on first use: MLflow's tracking registry loads entry points while it is itself
    being imported, and the store module imports back into it. None on an MLflow whose store
    has no ``_log_metrics_once`` to replace (older 3.x): that one gets its own store class."""
    global _store_class
    if _store_class is not None:
        return _store_class

    import sqlalchemy
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils.validation import _validate_metric

    if not callable(getattr(SqlAlchemyStore, "_log_metrics_once", None)):
        return None

    metrics_t = SqlMetric.__table__
    latest_t = SqlLatestMetric.__table__
    update_latest = (
        sqlalchemy.update(latest_t)
        .where(
            latest_t.c.run_uuid == sqlalchemy.bindparam("b_run_uuid"),
            latest_t.c.key == sqlalchemy.bindparam("b_key"),
        )
        .values(
            value=sqlalchemy.bindparam("b_value"),
            timestamp=sqlalchemy.bindparam("b_timestamp"),
            step=sqlalchemy.bindparam("b_step"),
            is_nan=sqlalchemy.bindparam("b_is_nan"),
        )
    )

    class BulkMetricsSqlAlchemyStore(SqlAlchemyStore):
        """``SqlAlchemyStore`` whose multi-metric writes are one Core executemany."""

        def _log_metrics_once(self, run_id, metrics):
            if len(metrics) < 2:
                return super()._log_metrics_once(run_id, metrics)
            rows: list[dict[str, Any]] = []
            seen = set()
            for idx, metric in enumerate(metrics):
                _validate_metric(
                    metric.key, metric.value, metric.timestamp, metric.step, path=f"metrics[{idx}]"
                )
                if metric not in seen:
                    is_nan, value = self.sanitize_metric_value(metric.value)
                    rows.append(
                        {
                            "run_uuid": run_id,
                            "key": metric.key,
                            "value": value,
                            "timestamp": metric.timestamp,
                            "step": metric.step,
                            "is_nan": is_nan,
                        }
                    )
                seen.add(metric)
            # The newest row per key; on a tie the first one, like the stock loop.
            newest: dict[str, dict[str, Any]] = {}
            for row in rows:
                best = newest.get(row["key"])
                if best is None or _newer(row, best):
                    newest[row["key"]] = row

            with self.ManagedSessionMaker(read_only=False) as session:
                run = self._get_run(run_uuid=run_id, session=session)
                self._check_run_is_active(run)
                try:
                    session.execute(sqlalchemy.insert(metrics_t), rows)
                    keys = sorted(newest)
                    stored: dict[str, dict[str, Any]] = {}
                    for i in range(0, len(keys), _IN_CLAUSE):
                        query = sqlalchemy.select(
                            latest_t.c.key, latest_t.c.value, latest_t.c.timestamp, latest_t.c.step
                        ).where(latest_t.c.run_uuid == run_id, latest_t.c.key.in_(keys[i : i + _IN_CLAUSE]))
                        stored.update((r.key, r._asdict()) for r in session.execute(query))
                    new = [newest[k] for k in keys if k not in stored]
                    later = [newest[k] for k in keys if k in stored and _newer(newest[k], stored[k])]
                    if new:
                        session.execute(sqlalchemy.insert(latest_t), new)
                    if later:
                        session.execute(
                            update_latest, [{f"b_{k}": v for k, v in row.items()} for row in later]
                        )
                    session.commit()
                    return None
                except sqlalchemy.exc.IntegrityError:
                    session.rollback()
            # A metric of this batch is already stored: MLflow's own path skips the duplicates.
            return super()._log_metrics_once(run_id, metrics)

    _store_class = BulkMetricsSqlAlchemyStore
    return _store_class


def build_store(store_uri: str, artifact_uri: str | None = None):
    """Entry point ``mlflow.tracking_store: sqlite``, called as MLflow's own builder is."""
    from mlflow.environment_variables import MLFLOW_ENABLE_WORKSPACES
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.tracking._tracking_service.utils import _SERVER_ARTIFACT_ROOT_ENV_VAR, _get_sqlalchemy_store

    store_class = None if MLFLOW_ENABLE_WORKSPACES.get() or not bulk_enabled() else _bulk_store_class()
    if store_class is None:
        return _get_sqlalchemy_store(store_uri, artifact_uri)
    # The same default as MLflow's builder (the server's artifact root, set for its workers).
    if artifact_uri is None:
        artifact_uri = os.environ.get(_SERVER_ARTIFACT_ROOT_ENV_VAR, DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH)
    replica = os.environ.get(_READ_REPLICA_ENV)
    _log.info(
        "mlflow-sftp-store: SQLite tracking store with bulk metric writes (%s=false turns it off)", BULK_ENV
    )
    return store_class(store_uri, artifact_uri, **({"read_db_uri": replica} if replica else {}))
