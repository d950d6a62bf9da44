"""Scenarios fed to reporting, with their hand-checked figures.

MisAS (parcours renoncement-aux-soins), March 2026 (no public holiday; Paris = UTC+1):
deadline = 48 business hours after the referral (shared/calendar.add_business_hours).

| case | detector | referral (UTC)  | deadline (UTC)  | first call (UTC) | business h | in time | closure                  | MisAS class |
|------|----------|-----------------|-----------------|------------------|-----------:|---------|--------------------------|-------------|
| D1   | ccas     | Mon 02 09:00    | Wed 04 09:00    | Tue 03 09:00     | 24         | yes     | objectif-atteint         | A (care)    |
| D2   | ccas     | Thu 05 09:00    | Mon 09 09:00    | Mon 09 08:00     | 47         | yes     | plan-termine, inclusion  | A (digital) |
| D3   | ccas     | Fri 06 09:00    | Tue 10 09:00    | Tue 10 13:00     | 52         | no      | delai-depasse, droits    | B           |
| D4   | ccas     | Mon 09 09:00    | Wed 11 09:00    | none             | -          | no      | delai-depasse, never met | not counted |
| D5   | ml       | Tue 10 09:00    | Thu 12 09:00    | Tue 10 15:00     | 6          | yes     | accompagnement-interrompu| I           |
| D6   | ml       | Thu 19 09:00    | Mon 23 09:00    | none (now Fri 20)| -          | pending | open                     | -           |
| D7   | ml       | Wed 11 09:00    | Fri 13 09:00    | Thu 12 09:00     | 24         | yes     | accompagnement-interrompu, droits | B  |

48-hour rate: 4 in time / 6 due = 0.6667 (D6 pending). Delays [6, 24, 24, 47, 52]:
median 24, p90 (nearest rank, 5th of 5) 52.
MisAS: N = 5 accompaniments (D1 D2 D3 D5 D7), A = 2, I = 3, B = 2:
0.7 × 2/5 + 0.3 × 2/3 = 0.28 + 0.2 = 0.48.
Drop-off: 6 closed, objectif-atteint 1, plan-termine 1, without outcome 4: 0.6667.
Relevance: ccas 3 accompaniments / 4 referrals = 0.75; ml 2 / 3 = 0.6667.
"""  # noqa: E501 - the table of the scenarios

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from shared import topics as t
from shared.calendar import add_business_hours
from shared.cloudevents import CloudEvent
from shared.contracts import internes as i
from tests.integration.reporting import builders as b

MISAS = "renoncement-aux-soins"
CCAS = i.Detecteur(type="ccas", identifiant="ccas-91-evry")
ML = i.Detecteur(type="mission-locale", identifiant="ml-91")
MISAS_NOW = b.utc(2026, 3, 20, 12)

Events = dict[str, list[CloudEvent[Any]]]


def _case(
    out: Events,
    n: int,
    det: i.Detecteur,
    recu: datetime,
    calls: list[tuple[datetime, str]],
    closure: tuple[datetime, str] | None,
    goal: datetime | None = None,
) -> None:
    pseudo, dossier = f"misas-p{n}", f"misas-d{n}"
    dem = b.demande(
        pseudo,
        "signalement",
        recu,
        origine="signalement",
        detecteur=det,
        situation="renoncement-aux-soins",
    )
    out[t.DEMANDES].append(dem)
    out[t.DECISIONS].append(
        b.decision(
            pseudo,
            dem.data.demande_id,
            dossier,
            MISAS,
            "ouvert",
            recu + timedelta(seconds=5),
            detecteur=det,
        )
    )
    first = b.action(
        pseudo,
        dossier,
        MISAS,
        "prise-en-charge",
        "appel",
        "telephone",
        recu,
        modele="misas-prise-en-charge",
        echeance=add_business_hours(recu, 48),
        detecteur=det,
        planifiee_le=recu + timedelta(seconds=5),
    )
    out[t.ACTIONS].append(first)
    for k, (when, issue) in enumerate(calls):
        planned = (
            first
            if k == 0
            else b.action(
                pseudo,
                dossier,
                MISAS,
                f"suivi-{k}",
                "appel",
                "telephone",
                when - timedelta(hours=1),
                modele="misas-suivi",
                detecteur=det,
            )
        )
        if k:
            out[t.ACTIONS].append(planned)
        out[t.RESULTATS].append(
            b.resultat(pseudo, "tache-creee", planned.data.due_le, planned=planned)
        )
        out[t.RESULTATS].append(b.resultat(pseudo, "appel", when, planned=planned, issue=issue))
    if goal is not None:
        out[t.RESULTATS].append(
            b.resultat(pseudo, "objectif-atteint", goal, dossier_id=dossier, parcours=MISAS)
        )
    if closure is not None:
        out[t.DECISIONS].append(
            b.decision(
                pseudo,
                dem.data.demande_id,
                dossier,
                MISAS,
                "clos",
                closure[0],
                motif=closure[1],
                detecteur=det,
            )
        )


def misas() -> Events:
    out: Events = {t.DEMANDES: [], t.DECISIONS: [], t.ACTIONS: [], t.RESULTATS: []}
    u = b.utc
    _case(
        out,
        1,
        CCAS,
        u(2026, 3, 2, 9),
        [(u(2026, 3, 3, 9), "joint"), (u(2026, 3, 10, 9), "soins-realises")],
        (u(2026, 3, 10, 10), "objectif-atteint"),
        goal=u(2026, 3, 10, 9, 30),
    )
    _case(
        out,
        2,
        CCAS,
        u(2026, 3, 5, 9),
        [(u(2026, 3, 9, 8), "joint"), (u(2026, 3, 12, 9), "inclusion-numerique")],
        (u(2026, 3, 13, 9), "plan-termine"),
    )
    _case(
        out,
        3,
        CCAS,
        u(2026, 3, 6, 9),
        [
            (u(2026, 3, 10, 13), "injoignable"),
            (u(2026, 3, 11, 13), "joint"),
            (u(2026, 3, 16, 13), "droits-ouverts"),
        ],
        (u(2026, 3, 18, 9), "delai-depasse"),
    )
    _case(out, 4, CCAS, u(2026, 3, 9, 9), [], (u(2026, 3, 18, 9), "delai-depasse"))
    _case(
        out,
        5,
        ML,
        u(2026, 3, 10, 9),
        [(u(2026, 3, 10, 15), "joint"), (u(2026, 3, 17, 9), "refus")],
        (u(2026, 3, 17, 10), "accompagnement-interrompu"),
    )
    _case(out, 6, ML, u(2026, 3, 19, 9), [], None)
    _case(
        out,
        7,
        ML,
        u(2026, 3, 11, 9),
        [(u(2026, 3, 12, 9), "joint"), (u(2026, 3, 16, 9), "droits-ouverts")],
        (u(2026, 3, 19, 9), "accompagnement-interrompu"),
    )
    return out


COHORT_N, COHORT_CONVERTED, COHORT_LATE = 300, 127, 11
COHORT_NOW = b.utc(2026, 12, 1, 12)


def cohort(seed: int = 20260101) -> Events:
    """N retirees without complementary insurance sent the M+9 letter in January 2026;
    127 subscribe within 4 months, 11 more after, the others never."""
    rng = random.Random(seed)
    out: Events = {t.DEMANDES: [], t.ACTIONS: [], t.RESULTATS: []}
    converted = set(rng.sample(range(COHORT_N), COHORT_CONVERTED))
    late = set(rng.sample(sorted(set(range(COHORT_N)) - converted), COHORT_LATE))
    for n in range(COHORT_N):
        pseudo, dossier = f"senior-{n:04d}", f"seniors-d{n:04d}"
        sent = b.utc(2026, 1, 1 + n % 28, 8) + timedelta(minutes=n)
        letter = b.action(
            pseudo,
            dossier,
            "accompagnement-des-seniors",
            "p3-m9-complementaire",
            "courrier",
            "courrier",
            sent - timedelta(hours=1),
            modele="seniors-m9-complementaire",
        )
        out[t.ACTIONS].append(letter)
        out[t.RESULTATS].append(b.resultat(pseudo, "envoye", sent, planned=letter))
        if n in converted:
            # within 4 months; the last day of the window included
            days = rng.randint(1, 119) if n % 10 else 120
            subscribed = sent + timedelta(days=days)
        elif n in late:
            subscribed = sent + timedelta(days=rng.randint(125, 200))
        else:
            continue
        out[t.DEMANDES].append(
            b.demande(pseudo, "complementaire-souscrite", subscribed, date_effet=subscribed.date())
        )
    return out
