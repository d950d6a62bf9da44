"""The reporting read bench's pure parts: a person's facts are made by reporting's own
projections (the shapes the service stores), and the report prints one row per size."""

from __future__ import annotations

from bench import reporting_read as rr


def test_a_person_gives_the_six_facts_of_a_usual_path_in_reporting_shapes() -> None:
    facts = rr.facts_of(7)
    (demande,), _ = facts["demandes"]
    (decision,), _ = facts["decisions"]
    _, actions = facts["actions"]
    resultats, _ = facts["resultats"]
    assert demande["evenement"] == "retraite" and decision["statut"] == "ouvert"
    assert decision["demande_id"] == demande["_id"]
    assert [f["kind"] for _, f in actions] == ["courrier", "appel"]
    assert [r["statut"] for r in resultats] == ["envoye", "appel"]
    assert {r["action_id"] for r in resultats} == {aid for aid, _ in actions}
    assert all(r["dossier_id"] == decision["dossier_id"] for r in resultats)
    assert rr.facts_of(8)["demandes"][0][0]["_id"] != demande["_id"]


def test_the_report_has_a_row_per_size() -> None:
    text = rr.report([{"persons": 10_000, "facts": 60_000, "load_s": 12.5, "compute_s": 0.02,
                       "cells": 1_440, "rss_before_mb": 76.0, "rss_peak_mb": 90.0,
                       "db_before_mb": 300.0, "db_peak_mb": 520.0},
                      {"persons": 20_000, "facts": 120_000, "load_s": 25.0, "compute_s": 0.02,
                       "cells": 1_440, "rss_before_mb": 76.0, "rss_peak_mb": 91.0,
                       "db_before_mb": 0.0, "db_peak_mb": 0.0}], "python -m bench reporting")
    assert "| 10,000 | 60,000 | 12.5 s | 0.02 s | 1,440 | 76 → 90 MB | 300 → 520 MB |" in text
    assert "| 20,000 | 120,000 | 25.0 s | 0.02 s | 1,440 | 76 → 91 MB | - |" in text
