"""The guard and the channel choice, pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.notification import rules
from services.notification.rules import Context, Defer, Policy, Send, Skip, decide
from shared.calendar import add_business_hours
from shared.contracts import internes as i

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # Monday 11:00 Paris
POLICY = Policy(contact_cap=2)
HOME = {"ligne1": "12 rue des Lilas", "code_postal": "91000", "commune": "Évry"}
SAFE = {"ligne1": "Boîte postale 12", "code_postal": "75001", "commune": "Paris"}


def act(**kw: Any) -> i.ActionPlanifiee:
    v: dict[str, Any] = {"action_id": "a1", "pseudonyme": "p1", "dossier_id": "d1",
                         "parcours": "x", "etape": "y", "kind": "courrier", "canaux": ["courrier"],
                         "due_le": NOW, "modele": "m"}
    v.update(kw)
    return i.ActionPlanifiee(**v)


def person(**kw: Any) -> i.Coordonnees:
    v: dict[str, Any] = {"pseudonyme": "p1", "nom": "Lefèvre", "prenom": "Josiane", "adresse": HOME,
                         "telephone": "0612345678", "email": "j@example.org", "maj_le": NOW}
    v.update(kw)
    return i.Coordonnees(**v)


def at_risk(**securite: Any) -> i.Coordonnees:
    return person(securite={"violences_intrafamiliales": True, **securite})


def test_a_plain_letter_goes_to_the_home_address() -> None:
    d = decide(act(), Context(person()), NOW, POLICY)
    assert isinstance(d, Send) and d.canal == "courrier"
    assert d.recipient.adresse["ligne1"] == HOME["ligne1"]


def test_the_first_reachable_channel_wins() -> None:
    d = decide(act(canaux=["email", "courrier"]), Context(person(email=None)), NOW, POLICY)
    assert isinstance(d, Send) and d.canal == "courrier"


def test_missing_contact_data_waits_then_skips() -> None:
    assert isinstance(decide(act(), Context(None), NOW, POLICY), Defer)
    late = NOW + POLICY.contacts_wait + timedelta(seconds=1)
    assert decide(act(), Context(None), late, POLICY) == Skip(rules.COORDONNEES_INCONNUES)


def test_a_deceased_person_gets_nothing_but_the_family_letter_goes() -> None:
    dead = person(decede=True, proche={"nom": "Lefèvre", "prenom": "Paul", "lien": "fils",
                                       "adresse": SAFE})
    assert decide(act(), Context(dead), NOW, POLICY) == Skip(rules.PERSONNE_DECEDEE)
    family = decide(act(destinataire="proche", condition="proche_connu", obligatoire=True),
                    Context(dead), NOW, POLICY)
    assert isinstance(family, Send) and family.recipient.prenom == "Paul"
    no_family = decide(act(destinataire="proche", condition="proche_connu"),
                       Context(person(decede=True)), NOW, POLICY)
    assert no_family == Skip(rules.CONDITION, "proche_connu")


def test_an_objection_stops_every_contact_but_the_mandatory_ones() -> None:
    objector = person(consentement_contact=False)
    assert decide(act(), Context(objector), NOW, POLICY) == Skip(rules.OPPOSITION)
    assert isinstance(decide(act(obligatoire=True), Context(objector), NOW, POLICY), Send)


def test_a_person_at_risk_never_gets_a_letter_at_home_nor_an_sms_on_the_shared_number() -> None:
    assert decide(act(), Context(at_risk()), NOW, POLICY) == Skip(rules.SECURITE)
    sms = decide(act(canaux=["sms"], kind="sms"), Context(at_risk()), NOW, POLICY)
    assert sms == Skip(rules.SECURITE)
    assert decide(act(canaux=["email"]), Context(at_risk()), NOW, POLICY) == Skip(rules.SECURITE)
    safe = decide(act(), Context(at_risk(adresse_sure=SAFE)), NOW, POLICY)
    assert isinstance(safe, Send) and safe.recipient.adresse["ligne1"] == SAFE["ligne1"]
    sms = decide(act(canaux=["sms"]), Context(at_risk(telephone_sur="0798765432")), NOW, POLICY)
    assert isinstance(sms, Send) and sms.recipient.telephone == "0798765432"


def test_designated_channels_are_the_only_ones_for_a_person_at_risk() -> None:
    c = at_risk(canaux_designes=["sms"], adresse_sure=SAFE, telephone_sur="0798765432")
    d = decide(act(canaux=["courrier", "sms"]), Context(c), NOW, POLICY)
    assert isinstance(d, Send) and d.canal == "sms"
    assert decide(act(canaux=["courrier"]), Context(c), NOW, POLICY) == Skip(rules.SECURITE)


def test_conditions_known_here_are_checked_and_the_others_are_left_to_orientation() -> None:
    assert decide(act(condition="sans_violences_intrafamiliales"),
                  Context(at_risk(adresse_sure=SAFE)),
                  NOW, POLICY) == Skip(rules.CONDITION, "sans_violences_intrafamiliales")
    assert isinstance(decide(act(condition="sans_complementaire"), Context(person()), NOW, POLICY),
                      Send)


def test_the_cap_counts_recent_contacts_and_spares_mandatory_actions() -> None:
    recent = [NOW - timedelta(days=1), NOW - timedelta(days=2)]
    assert decide(act(), Context(person(), recent), NOW, POLICY) == Skip(rules.PLAFOND, "2")
    assert isinstance(decide(act(obligatoire=True), Context(person(), recent), NOW, POLICY), Send)
    old = [NOW - timedelta(days=40), NOW - timedelta(days=41)]
    assert isinstance(decide(act(), Context(person(), old), NOW, POLICY), Send)


def test_quiet_hours_defer_sms_and_calls_not_letters() -> None:
    saturday_night = datetime(2026, 3, 7, 21, 0, tzinfo=UTC)  # 22:00 Paris
    monday_nine = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    assert decide(act(canaux=["sms"]), Context(person()), saturday_night, POLICY) == Defer(
        monday_nine, "heures-calmes")
    assert isinstance(decide(act(), Context(person()), saturday_night, POLICY), Send)
    call = decide(act(kind="appel", canaux=["telephone"]), Context(person()), saturday_night,
                  POLICY)
    assert call == Defer(monday_nine, "heures-calmes")
    now_call = decide(act(kind="appel", canaux=["telephone"]), Context(person()), NOW, POLICY)
    assert isinstance(now_call, Send) and now_call.task


def test_a_timer_id_is_one_per_action_and_due_time_and_tells_its_due_time() -> None:
    due = NOW + timedelta(days=275, microseconds=123456)
    assert rules.due_of(rules.timer_id(3, due, "a")) == due
    assert rules.timer_id(3, due, "a") != rules.timer_id(3, due, "b")
    assert rules.timer_id(3, due, "a") != rules.timer_id(3, due + timedelta(hours=1), "a")


def test_a_friday_evening_referral_is_due_48_business_hours_later_holidays_included() -> None:
    friday_evening = datetime(2026, 5, 1 + 7, 16, 0, tzinfo=UTC)  # Fri 8 May 2026 is a holiday
    assert add_business_hours(friday_evening, 48) == datetime(2026, 5, 12, 22, 0, tzinfo=UTC)
    friday = datetime(2026, 3, 6, 17, 0, tzinfo=UTC)  # 18:00 Paris
    assert add_business_hours(friday, 48) == datetime(2026, 3, 10, 17, 0, tzinfo=UTC)
    # Easter Monday 6 April 2026: Friday 3 April 18:00 → Wednesday 8 April 18:00.
    assert add_business_hours(datetime(2026, 4, 3, 16, 0, tzinfo=UTC), 48) == datetime(
        2026, 4, 8, 16, 0, tzinfo=UTC)


def test_the_site_of_a_task_is_the_departement_or_the_default() -> None:
    assert rules.site_of(act(territoire={"departement": "17"}), "00") == "17"
    assert rules.site_of(act(), "00") == "00"


def test_a_safety_call_without_a_known_safe_number_is_an_agents_task_without_the_household_number(
) -> None:
    call = act(kind="appel", canaux=["telephone"], obligatoire=True,
               condition="violences_intrafamiliales")
    d = decide(call, Context(at_risk()), NOW, POLICY)
    assert isinstance(d, Send) and d.task and d.canal == "telephone"
    assert d.recipient.telephone is None and d.recipient.adresse is None
    safe = decide(call, Context(at_risk(telephone_sur="0798765432")), NOW, POLICY)
    assert isinstance(safe, Send) and safe.task and safe.recipient.telephone == "0798765432"
