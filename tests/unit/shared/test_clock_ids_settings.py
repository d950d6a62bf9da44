from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.clock import FileOffsetClock, ManualClock, write_offset
from shared.ids import derive_id
from shared.settings import Settings, settings_table


def test_a_manual_clock_moves_only_when_told() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = ManualClock(start)
    assert clock.now() == start
    clock.advance(timedelta(days=270))
    assert clock.now() == start + timedelta(days=270)


def test_a_file_offset_clock_follows_the_offset_written_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "clock.json"
    clock = FileOffsetClock(path)
    assert abs((clock.now() - datetime.now(UTC)).total_seconds()) < 5
    write_offset(path, timedelta(days=270).total_seconds())
    ahead = clock.now() - datetime.now(UTC)
    assert timedelta(days=269, hours=23) < ahead < timedelta(days=270, minutes=1)


def test_derived_ids_are_deterministic_and_distinct() -> None:
    assert derive_id("action", "c1", "m9") == derive_id("action", "c1", "m9")
    assert derive_id("action", "c1", "m9") != derive_id("action", "c1", "m10")
    assert derive_id("action", "c1m", "9") != derive_id("action", "c1", "m9")
    with pytest.raises(ValueError):
        derive_id("action")


def test_settings_come_from_the_environment_with_one_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARCOURS_KAFKA_BOOTSTRAP_SERVERS", "k:1")
    monkeypatch.setenv("PARCOURS_SERVICE_NAME", "orientation")
    monkeypatch.setenv("PARCOURS_TOPIC_PREFIX", "x.")
    s = Settings()
    assert s.kafka_bootstrap_servers == "k:1"
    assert s.database_name == "parcours_orientation"
    assert s.topic("parcours.actions") == "x.parcours.actions"
    assert "dev-only" not in repr(s), "secrets are not printed"


def test_every_setting_is_documented() -> None:
    table = settings_table()
    for name, field in Settings.model_fields.items():
        assert field.description, name
        assert f"PARCOURS_{name.upper()}" in table


def test_derived_ids_are_the_uuid5_of_the_namespace_and_name() -> None:
    import random
    import uuid

    from shared.ids import NAMESPACE, derive_id

    rng = random.Random(3)
    for _ in range(5000):
        parts = [rng.choice(["a", "é", "日本", "x" * rng.randrange(60), str(rng.random())])
                 for _ in range(rng.randrange(1, 4))]
        expected = str(uuid.uuid5(NAMESPACE, "\x1f".join(["k", *parts])))
        assert derive_id("k", *parts) == expected
