"""The daemon's notification housekeeping: matching after imports, the 10-day purge with its `lost` notification,
and the metrics (pending per topic, the oldest unfetched age, lost notifications), with the clock driven by hand."""

from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from importer.daemon.notifications import NotificationHousekeeper
from importer.db import create_engine
from importer.http.metrics import ImporterMetrics
from importer.load import subscriptions
from importer.load.pipeline import Pipeline
from importer.load.plugin import discover
from tests.conftest import Databases
from tests.daemon.clock import ManualClock
from tests.registers.autorisation.kit import FIRST, write_dump


def sample(metrics: ImporterMetrics, name: str, topic: str = "stamdata/autorisation") -> float | None:
    value = metrics.registry.get_sample_value(name, {"topic": topic})
    return None if value is None else float(value)


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
def test_housekeeping_matches_purges_after_10_days_and_keeps_the_metrics(databases: Databases,
                                                                         tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 11, 20, 6, 0, 0))
    registers = discover()
    metrics = ImporterMetrics(registers)
    pipeline = Pipeline(databases.settings(), clock)
    engine = create_engine(databases.production_url)
    try:
        pipeline.migrate()
        with engine.begin() as connection:
            subscriptions.put_list(connection, "gp", "mine", ["0101801234", "0202851234"], clock.now())
            point = subscriptions.create_pull_point(connection, "gp", clock.now())
            subscriptions.subscribe(connection, "gp", point, "mine", "stamdata/autorisation", clock.now())
        housekeeper = NotificationHousekeeper(engine, clock, metrics, list(registers.values()))
        housekeeper.step()
        assert sample(metrics, "stamdata_notifications_pending") == 0
        assert sample(metrics, "stamdata_notifications_pending", "stamdata/doseringsforslag") == 0

        pipeline.import_dataset(registers["autorisation"], write_dump(tmp_path, "20261120AutDK.csv", FIRST))
        clock.advance(3600)
        housekeeper.step()  # the new events are matched before anyone pulls
        assert sample(metrics, "stamdata_notifications_pending") == 2
        assert sample(metrics, "stamdata_notifications_oldest_unfetched_age_seconds") == 3600

        clock.advance(10 * 86400)
        housekeeper.step()  # past the retention: purged, the pull point told
        assert sample(metrics, "stamdata_notifications_pending") == 0
        assert sample(metrics, "stamdata_notifications_lost_total") == 2
        assert sample(metrics, "stamdata_notifications_lost_unfetched") == 1
        with engine.begin() as connection:
            answer = subscriptions.pull(connection, "gp", point, "m", 10, clock.now())
        assert [(item.action, item.reason) for item in answer.notifications] == [("lost", "purged")]
        housekeeper.step()
        assert sample(metrics, "stamdata_notifications_lost_unfetched") == 0
    finally:
        engine.dispose()
        pipeline.close()


def test_housekeeping_survives_a_database_that_is_away(tmp_path: Path) -> None:
    engine = sa.create_engine("mysql+pymysql://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    housekeeper = NotificationHousekeeper(engine, ManualClock(), None, list(discover().values()))
    housekeeper.step()  # logged, not raised: the next round tries again
    assert housekeeper.next_purge is None
