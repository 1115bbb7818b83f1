"""The control plane's own bookkeeping."""

from __future__ import annotations

from sqlalchemy import func, select

from jobstore.db.control import KEPT_VERIFY_REQUESTS, ControlPlane
from jobstore.db.engine import create_store_engine
from jobstore.db.schema import build_schema
from jobstore.stages import Stage


def test_old_verify_requests_and_their_reports_are_pruned_as_new_ones_arrive(
        db_url: str, table_name: str) -> None:
    engine = create_store_engine(db_url)
    schema = build_schema(table_name)
    control = ControlPlane(engine, schema)
    try:
        control.ensure(Stage.DUAL_WRITE)
        first = control.request_verify("test")
        control.submit_report(first, "instance-a", {"consistent": True})
        for _ in range(KEPT_VERIFY_REQUESTS + 5):
            latest = control.request_verify("test")
        requests, reports = schema.verify_requests, schema.verify_reports
        with engine.connect() as conn:
            kept = conn.execute(select(func.count()).select_from(requests)
                                .where(requests.c.job_table == table_name)).scalar_one()
            first_reports = conn.execute(select(func.count()).select_from(reports)
                                         .where(reports.c.request_id == first)).scalar_one()
        assert kept == KEPT_VERIFY_REQUESTS
        assert first_reports == 0
        assert control.latest_request() == latest
        assert control.newest_requests_after(latest - 3) == (latest, None)
        assert control.newest_requests_after(latest) == (None, None)
        held = control.request_held_keys("test")
        assert control.newest_requests_after(latest - 3) == (latest, held)
    finally:
        engine.dispose()
