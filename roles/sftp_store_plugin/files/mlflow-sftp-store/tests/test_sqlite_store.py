"""The sqlite tracking store's bulk metric path against MLflow's own SqlAlchemyStore, row for row."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from mlflow_sftp_store import sqlite_store

T0 = 1_790_000_000_000


def _store(tmp_path: Path, name: str, bulk: bool, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(sqlite_store.BULK_ENV, "true" if bulk else "false")
    store = sqlite_store.build_store(f"sqlite:///{tmp_path / name}.db", str(tmp_path / "artifacts"))
    run_id = store.create_run(store.create_experiment("e"), "u", T0, [], "r").info.run_id
    return store, run_id


def _rows(store, table: str) -> list[tuple]:
    """Every row of a metrics table, run id left out (the two stores' runs differ)."""
    db = store.db_uri.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f"SELECT key, value, timestamp, step, is_nan FROM {table}").fetchall()
    return sorted(rows)


def _m(key: str, value: float, ts: int, step: int) -> Metric:
    return Metric(key, value, T0 + ts, step)


BATCHES = [
    # in-batch duplicates, ties on (step, timestamp) with different values, NaN and +/-inf,
    # steps out of order
    [
        _m("loss", 0.5, 1, 1),
        _m("loss", 0.5, 1, 1),
        _m("loss", 0.4, 2, 0),
        _m("loss", 0.7, 1, 1),
        _m("acc", math.nan, 1, 3),
        _m("acc", 0.9, 1, 2),
        _m("big", math.inf, 1, 0),
        _m("small", -math.inf, 1, 0),
        _m("nan-tie", 0.0, 5, 5),
        _m("nan-tie", math.nan, 5, 5),
    ],
    # older than what is stored (no latest update), newer (update), new keys
    [_m("loss", 0.1, 0, 0), _m("acc", 0.95, 9, 9), _m("new", 1.0, 1, 1), _m("new", 2.0, 1, 2)],
    # one metric already stored (primary-key conflict: the stock recovery path) plus new ones
    [_m("loss", 0.4, 2, 0), _m("loss", 0.3, 3, 4), _m("acc", 0.99, 10, 10)],
    # the 1,000-metric maximum over 10 keys, as the benchmark sends
    [_m(f"m{j % 10}", float(j), 20, j) for j in range(1000)],
]


def test_registry_gives_the_bulk_store_for_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.server.handlers import _tracking_store_registry as server_registry
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry as client_registry

    monkeypatch.delenv(sqlite_store.BULK_ENV, raising=False)
    for i, registry in enumerate((server_registry, client_registry)):
        store = registry.get_store(f"sqlite:///{tmp_path}/r{i}.db", str(tmp_path / "a"))
        assert type(store).__name__ == "BulkMetricsSqlAlchemyStore"
        assert isinstance(store, SqlAlchemyStore)
    monkeypatch.setenv(sqlite_store.BULK_ENV, "false")
    store = server_registry.get_store(f"sqlite:///{tmp_path}/off.db", str(tmp_path / "a"))
    assert type(store) is SqlAlchemyStore


def test_bulk_rows_equal_stock_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stock, stock_run = _store(tmp_path, "stock", False, monkeypatch)
    bulk, bulk_run = _store(tmp_path, "bulk", True, monkeypatch)
    assert type(bulk) is not SqlAlchemyStore and type(stock) is SqlAlchemyStore
    for batch in BATCHES:
        stock.log_batch(stock_run, batch, [], [])
        bulk.log_batch(bulk_run, batch, [], [])
        assert _rows(bulk, "metrics") == _rows(stock, "metrics")
        assert _rows(bulk, "latest_metrics") == _rows(stock, "latest_metrics")
    # single metrics take the stock path in both
    stock.log_metric(stock_run, _m("loss", 0.05, 30, 30))
    bulk.log_metric(bulk_run, _m("loss", 0.05, 30, 30))
    assert _rows(bulk, "latest_metrics") == _rows(stock, "latest_metrics")
    assert len(_rows(bulk, "metrics")) == 9 + 4 + 2 + 1000 + 1  # duplicates stored once
    latest = {m.key: m for m in bulk.get_run(bulk_run).data._metric_objs}
    assert latest["acc"].value == 0.99 and latest["loss"].step == 30
    assert math.isnan(latest["nan-tie"].value) is False  # first of a tie wins, as in MLflow
    history = bulk.get_metric_history(bulk_run, "loss")
    assert sorted((m.step, m.value) for m in history) == sorted(
        (m.step, m.value) for m in stock.get_metric_history(stock_run, "loss")
    )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (Metric("loss", "x", T0, 0), "Invalid value \"x\" for parameter 'metrics[1].value'"),  # type: ignore[arg-type]
        (Metric("loss", 1.0, None, 0), "Invalid value null for parameter 'metrics[1].timestamp'"),  # type: ignore[arg-type]
        (Metric("../up", 1.0, T0, 0), "Invalid value \"../up\" for parameter 'metrics[1].name'"),
    ],
)
def test_bad_metric_same_error_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: Metric, message: str
) -> None:
    stock, stock_run = _store(tmp_path, "stock", False, monkeypatch)
    bulk, bulk_run = _store(tmp_path, "bulk", True, monkeypatch)
    errors = []
    for store, run_id in ((stock, stock_run), (bulk, bulk_run)):
        with pytest.raises(MlflowException) as exc:
            store.log_batch(run_id, [_m("ok", 1.0, 0, 0), bad], [], [])
        errors.append((exc.value.error_code, str(exc.value).replace(run_id, "RUN")))
        assert _rows(store, "metrics") == []
    assert errors[0] == errors[1]
    assert message in errors[1][1]


def test_deleted_run_refused_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stock, stock_run = _store(tmp_path, "stock", False, monkeypatch)
    bulk, bulk_run = _store(tmp_path, "bulk", True, monkeypatch)
    errors = []
    for store, run_id in ((stock, stock_run), (bulk, bulk_run)):
        store.delete_run(run_id)
        with pytest.raises(MlflowException) as exc:
            store.log_batch(run_id, BATCHES[1], [], [])
        errors.append((exc.value.error_code, str(exc.value).replace(run_id, "RUN")))
        assert _rows(store, "metrics") == []
    assert errors[0] == errors[1]


def test_older_mlflow_without_the_method_gets_its_own_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "_store_class", None)
    monkeypatch.delattr(SqlAlchemyStore, "_log_metrics_once")
    monkeypatch.delenv(sqlite_store.BULK_ENV, raising=False)
    store = sqlite_store.build_store(f"sqlite:///{tmp_path}/old.db", str(tmp_path / "a"))
    assert type(store) is SqlAlchemyStore
