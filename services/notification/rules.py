"""Notification's decisions, pure (no I/O): timer keys, the guard run just before an action
fires, the choice of channel and recipient, quiet hours.

The guard, in order (the first that applies wins):

1. no contact data yet (``personnes.coordonnees``) → wait, then skip ``coordonnees-inconnues``;
2. the person is deceased and the action is addressed to them → skip ``personne-decedee``
   (an action addressed to the family, ``destinataire: proche``, is what a death opens);
3. objection to being contacted → skip ``opposition-contact``, unless the action is
   ``obligatoire``;
4. the step's condition no longer holds → skip ``condition-non-remplie``. Conditions this
   service can evaluate from contact data: ``violences_intrafamiliales``,
   ``sans_violences_intrafamiliales``, ``proche_connu``. The others (``sans_complementaire``,
   ``beneficiaire_c2s``) are about facts orientation holds: orientation re-checks them and
   cancels the action when they change, so here they are taken as still true;
5. per-person cap across parcours (non-mandatory contacts) → skip ``plafond-contacts``;
6. channel: the first of the action's channels for which a safe recipient exists. A person at
   risk (violences intrafamiliales) is reached only on the channels designated for them, at the
   safe address / safe phone; never at the household address, never on the shared number → skip
   ``securite-aucun-canal-sur`` when none is left (but an agent's phone task is still created,
   without the household's number, when no safe number is known); ``aucun-canal-disponible``
   when contact data lacks every channel;
7. quiet hours (SMS and phone) → defer to the next allowed time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from shared.calendar import next_allowed_time
from shared.contracts import internes as i

EVALUATED_CONDITIONS = frozenset(
    {"violences_intrafamiliales", "sans_violences_intrafamiliales", "proche_connu"}
)

# Skip reasons (stable codes, published in Resultat.raison).
COORDONNEES_INCONNUES = "coordonnees-inconnues"
PERSONNE_DECEDEE = "personne-decedee"
OPPOSITION = "opposition-contact"
CONDITION = "condition-non-remplie"
PLAFOND = "plafond-contacts"
SECURITE = "securite-aucun-canal-sur"
AUCUN_CANAL = "aucun-canal-disponible"

TASK_KINDS = frozenset({"appel", "rendez-vous"})


@dataclass(frozen=True)
class Recipient:
    """Who the action reaches and where (personal data: never logged, never published)."""

    nom: str
    prenom: str
    adresse: dict[str, str | None] | None = None
    telephone: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Send:
    canal: i.Canal
    recipient: Recipient
    task: bool = False


@dataclass(frozen=True)
class Skip:
    raison: str
    detail: str = ""


@dataclass(frozen=True)
class Defer:
    until: datetime
    why: str


Decision = Send | Skip | Defer


@dataclass(frozen=True)
class Policy:
    contact_cap: int = 4
    cap_window: timedelta = timedelta(days=30)
    contacts_wait: timedelta = timedelta(hours=24)
    retry: timedelta = timedelta(minutes=5)
    window_start: time = time(9, 0)
    window_end: time = time(20, 0)


@dataclass(frozen=True)
class Context:
    """What the guard needs besides the action: contact data and recent contacts."""

    coordonnees: i.Coordonnees | None
    recent_contacts: list[datetime] = field(default_factory=list)


def timer_id(partition: int, due: datetime, action_id: str) -> str:
    """``_id`` of a pending timer: one per action and due time, the due time readable
    (:func:`due_of`)."""
    return f"{partition:03d}|{_stamp(due)}|{action_id}"


def due_of(timer_id: str) -> datetime:
    """The due time written in a timer's ``_id`` (:func:`timer_id`)."""
    return datetime.strptime(timer_id.split("|")[1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decide(action: i.ActionPlanifiee, ctx: Context, now: datetime, policy: Policy) -> Decision:
    c = ctx.coordonnees
    if c is None:
        if now - action.due_le < policy.contacts_wait:
            return Defer(now + policy.retry, "attente-coordonnees")
        return Skip(COORDONNEES_INCONNUES)
    if c.decede and action.destinataire == "personne":
        return Skip(PERSONNE_DECEDEE)
    if not c.consentement_contact and not action.obligatoire:
        return Skip(OPPOSITION)
    if action.condition and not condition_holds(action.condition, c):
        return Skip(CONDITION, action.condition)
    if not action.obligatoire:
        since = now - policy.cap_window
        if sum(1 for t in ctx.recent_contacts if t > since) >= policy.contact_cap:
            return Skip(PLAFOND, str(policy.contact_cap))
    choice = choose_channel(action, c)
    if isinstance(choice, Skip):
        return choice
    allowed = next_allowed_time(now, choice.canal, earliest=policy.window_start,
                                latest=policy.window_end)
    if allowed > now:
        return Defer(allowed, "heures-calmes")
    return choice


def condition_holds(name: str, c: i.Coordonnees) -> bool:
    """Conditions evaluated here; any other is delegated to orientation (taken as true)."""
    if name == "violences_intrafamiliales":
        return c.securite.violences_intrafamiliales
    if name == "sans_violences_intrafamiliales":
        return not c.securite.violences_intrafamiliales
    if name == "proche_connu":
        return c.proche is not None
    return True


def choose_channel(action: i.ActionPlanifiee, c: i.Coordonnees) -> Send | Skip:
    blocked_for_safety = False
    for canal in action.canaux:
        recipient, unsafe = _recipient(canal, action.destinataire, c)
        if unsafe and canal == "telephone" and action.kind in TASK_KINDS:
            # An agent's call to a person at risk whose safe number is unknown: the task still
            # goes to the agents' queue (a mandatory safety call must not vanish), without the
            # household's number; the agent obtains a safe one (e.g. through the Caf).
            return Send(canal, Recipient(nom=c.nom, prenom=c.prenom), task=True)
        blocked_for_safety |= unsafe
        if recipient is not None:
            return Send(canal, recipient, task=action.kind in TASK_KINDS and canal == "telephone")
    return Skip(SECURITE) if blocked_for_safety else Skip(AUCUN_CANAL)


def _recipient(canal: str, destinataire: str, c: i.Coordonnees) -> tuple[Recipient | None, bool]:
    """The recipient on ``canal``, and whether safety alone ruled it out."""
    if destinataire == "proche":
        p = c.proche
        if p is None:
            return None, False
        r = Recipient(nom=p.nom, prenom=p.prenom,
                      adresse=p.adresse.model_dump() if p.adresse else None, telephone=p.telephone)
        return (r if _reaches(canal, r) else None), False
    s = c.securite
    if s.violences_intrafamiliales:
        if s.canaux_designes and canal not in s.canaux_designes:
            return None, True
        r = Recipient(
            nom=c.nom, prenom=c.prenom,
            adresse=s.adresse_sure.model_dump() if s.adresse_sure else None,
            telephone=s.telephone_sur,
            # An e-mail box may be shared too: only when the person designated e-mail.
            email=c.email if "email" in s.canaux_designes else None,
        )
        ok = _reaches(canal, r)
        household = _reaches(canal, _plain(c))
        return (r if ok else None), (not ok and household)
    r = _plain(c)
    return (r if _reaches(canal, r) else None), False


def _plain(c: i.Coordonnees) -> Recipient:
    return Recipient(nom=c.nom, prenom=c.prenom,
                     adresse=c.adresse.model_dump() if c.adresse else None,
                     telephone=c.telephone, email=c.email)


def _reaches(canal: str, r: Recipient) -> bool:
    if canal == "courrier":
        return r.adresse is not None
    if canal in ("sms", "telephone"):
        return r.telephone is not None
    if canal == "email":
        return r.email is not None
    return False


def site_of(action: i.ActionPlanifiee, default: str) -> str:
    """The agents' site that handles a phone task: the action's département."""
    return action.territoire.departement or default

