"""From a life event on evenements-vie to the M+9 letter on parcours.actions, through the
real broker and database: signalement and orientation run in this process, each with its
own settings and database."""

from __future__ import annotations

import json
from typing import Any

from services.orientation.app import create_app as orientation_app
from services.signalement.app import create_app as signalement_app
from shared.clock import ManualClock
from shared.contracts import internes as i
from shared.contracts.evenements import example_event
from shared.topics import ACTIONS, DECISIONS, DEMANDES, EVENEMENTS_VIE
from tests.inputs import CT
from tests.integration.orientation.helpers import NOW, instant, paris, planned, published
from tests.support import eventually, produce, read_all, running


async def test_a_retirement_life_event_ends_as_the_m9_letter_planned_on_parcours_actions(
    topics: str, make_settings: Any
) -> None:
    s_signalement, s_orientation = make_settings("signalement"), make_settings("orientation")
    event = example_event("retraite", date_effet="2026-07-01", sans_complementaire=True)
    event["data"]["assure"]["date_naissance"] = "1964-01-15"
    event["id"] = "carsat-retraite-0001"
    bootstrap = s_signalement.kafka_bootstrap_servers
    async with running(signalement_app(s_signalement, clock=ManualClock(NOW))), \
            running(orientation_app(s_orientation, clock=ManualClock(NOW))):
        await produce(bootstrap, s_signalement.topic(EVENEMENTS_VIE),
                      [(b"carsat", json.dumps(event).encode(), [CT])])
        (demande,) = await read_all(bootstrap, s_signalement.topic(DEMANDES), expect=1,
                                    timeout=60)
        demande_event = json.loads(demande.value)
        pseudo = demande_event["data"]["pseudonyme"]
        actions = await eventually(lambda: _four_planned(s_orientation), timeout=60)

    letters = {a["data"]["etape"]: a for a in actions}
    m9 = letters["m9-sans-complementaire"]
    assert m9["type"] == i.ACTION_PLANIFIEE
    assert instant(m9["data"]["due_le"]) == paris(2027, 4, 1, 9), "9 months after 1 July 2026"
    assert m9["data"]["kind"] == "courrier" and m9["data"]["condition"] == "sans_complementaire"
    assert m9["data"]["pseudonyme"] == pseudo and m9["_key"] == pseudo, "keyed by pseudonym"
    assert m9["causationid"] == demande_event["id"], "caused by the demand"
    assert m9["correlationid"] == demande_event["correlationid"] == event["id"], \
        "correlated with the life event"
    assert set(letters) == {"p1-avant-la-retraite", "p2-passage-a-la-retraite",
                            "m9-sans-complementaire", "p3-bien-vieillir"}
    decisions = await published(s_orientation, DECISIONS)
    (decision,) = [d["data"] for d in decisions]
    assert decision["statut"] == "ouvert" and decision["parcours"] == "accompagnement-des-seniors"
    assert any("+9 mois" in phrase for phrase in decision["explication"])
    # no personal data left signalement
    for e in [*actions, *decisions]:
        blob = json.dumps(e)
        assert "184127645108946" not in blob and "Martin" not in blob and "Lilas" not in blob


async def _four_planned(settings: Any) -> list[dict[str, Any]] | None:
    events = await published(settings, ACTIONS)
    return events if len(planned(events)) >= 4 else None

