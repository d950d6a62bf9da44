"""A synthetic département: people, life events and partners' referrals for the demo and tests.

Everything is made up but shaped like the real thing:

- NIRs are valid (sex, birth year and month, place of birth, order number, the key computed by
  python-stdnum), consistent with the person's sex and birth date;
- names are common French names; addresses use the communes and postal codes of the
  département (Charente-Maritime by default, or Essonne);
- the event mix and the flags follow the seeds (``/work/shared/seeds``, summarised in
  DOMAIN.md), see the constants below and where each figure comes from.

The sample is a list of :class:`Item`: a life event (a CloudEvent for ``evenements-vie``), a
partner's referral (a body for signalement's ``POST /v1/signalements``), or a deliberately
invalid record (a reject intake must account for). The same seed gives the same sample.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from stdnum.fr import nir as stdnum_nir

from shared.contracts.evenements import event_type

# --------------------------------------------------------------------------- the territory

# (commune, postal code, INSEE commune number within the département, weight ~ population)
COMMUNES: dict[str, list[tuple[str, str, str, int]]] = {
    "17": [
        ("La Rochelle", "17000", "300", 77), ("Saintes", "17100", "415", 25),
        ("Rochefort", "17300", "299", 24), ("Royan", "17200", "306", 18),
        ("Aytré", "17440", "028", 9), ("Tonnay-Charente", "17430", "449", 8),
        ("Lagord", "17140", "200", 7), ("Saint-Jean-d'Angély", "17400", "347", 7),
        ("Périgny", "17180", "274", 8), ("Saujon", "17600", "421", 7),
        ("Châtelaillon-Plage", "17340", "094", 6), ("Surgères", "17700", "434", 7),
        ("Marennes-Hiers-Brouage", "17320", "219", 6), ("Saint-Pierre-d'Oléron", "17310", "385", 7),
        ("Jonzac", "17500", "197", 3), ("Pons", "17800", "283", 4),
        ("Saint-Martin-de-Ré", "17410", "369", 2), ("Matha", "17160", "226", 2),
        ("Montendre", "17130", "240", 3),
    ],
    "91": [
        ("Évry-Courcouronnes", "91000", "228", 67), ("Corbeil-Essonnes", "91100", "174", 51),
        ("Massy", "91300", "377", 52), ("Savigny-sur-Orge", "91600", "589", 37),
        ("Palaiseau", "91120", "477", 36), ("Athis-Mons", "91200", "027", 35),
        ("Draveil", "91210", "201", 29), ("Brétigny-sur-Orge", "91220", "103", 27),
        ("Grigny", "91350", "286", 29), ("Les Ulis", "91940", "692", 25),
        ("Étampes", "91150", "223", 25), ("Viry-Châtillon", "91170", "687", 31),
    ],
}
NOMS_DEPARTEMENT = {"17": "Charente-Maritime", "91": "Essonne"}

VOIES = [
    "rue de la République", "avenue du Général de Gaulle", "rue Victor Hugo", "rue des Lilas",
    "place du Marché", "rue Jean Jaurès", "chemin des Vignes", "rue de la Gare",
    "allée des Tilleuls", "boulevard Pasteur", "rue du Port", "impasse des Mouettes",
    "rue des Écoles", "avenue de la Libération", "rue Gambetta", "quai Duperré",
]
NOMS = [
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
    "Vincent", "Fournier", "Morel", "Girard", "André", "Mercier", "Dupont", "Lambert", "Bonnet",
    "François", "Martinez", "Legrand", "Garnier", "Faure", "Rousseau", "Blanc", "Guérin",
    "Muller", "Henry", "Roussel", "Nicolas", "Perrin", "Morin", "Mathieu", "Clément", "Gauthier",
    "Dumont", "Lopez", "Fontaine", "Chevalier", "Robin", "Masson", "Nguyen", "Boyer", "Denis",
    "Lemaire", "Duval", "Joly", "Benali", "Diallo", "Traoré", "Haddad", "Le Goff", "Bouvier",
]
PRENOMS = {
    "2": ["Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Françoise", "Monique",
          "Christine", "Sophie", "Camille", "Léa", "Manon", "Chloé", "Inès", "Sarah", "Emma",
          "Jade", "Louise", "Amina", "Aurélie", "Julie", "Céline", "Sandrine", "Jeanne"],
    "1": ["Jean", "Pierre", "Michel", "Philippe", "Alain", "Patrick", "Nicolas", "Christophe",
          "Daniel", "Thomas", "Lucas", "Hugo", "Nathan", "Théo", "Louis", "Mehdi", "Karim",
          "Julien", "Sébastien", "Laurent", "Éric", "Bernard", "Gabriel", "Yanis"],
}
LIENS = ["conjoint", "conjointe", "enfant", "fille", "fils", "frère", "sœur"]
# Other places of birth: neighbouring and large départements, and abroad (99 + country code).
AUTRES_NAISSANCES = [("16", "015"), ("79", "191"), ("33", "063"), ("75", "056"), ("86", "194"),
                     ("91", "228"), ("69", "123"), ("13", "055"), ("99", "350"), ("99", "352")]

# --------------------------------------------------------------------------- proportions

# Share of each kind in a sample. The order follows the seeds' volumes (Essonne 2022, seed 002:
# 20,677 pregnancy calendars > 2,467 referrals ≈ 2,268 retirement letters > ASE youths), then
# flattened so that a few hundred items show every flow (raw volumes would give ~70 %
# pregnancies and almost no ASE 17-year-old). "signalement" is a partner's referral over HTTP.
EVENT_MIX: dict[str, float] = {
    "declaration-grossesse": 0.20,
    "retraite": 0.18,
    "signalement": 0.10,
    "deces": 0.10,
    "separation": 0.08,
    "entree-ald": 0.07,
    "depart-medecin-traitant": 0.06,
    "perte-emploi": 0.05,
    "entree-invalidite": 0.04,
    "fin-droits-c2s": 0.04,
    "ase-17-ans": 0.04,
    "levee-ecrou": 0.02,
    "sortie-ase": 0.02,
}
# Seed 000 (CPAM 17, territory statistics): 11.9 % without C2S complementary insurance, 14 %
# without a treating doctor (13.6 % in Corrèze, seed 004).
SANS_COMPLEMENTAIRE = 0.119
SANS_MEDECIN_TRAITANT = 0.14
# Seed 001: 85 % of single parents are women (the separation's declarant here).
SEPARATION_FEMME = 0.85
# Not in the seeds (an assumption, so that the safety rules show in the demo).
VIOLENCES_INTRAFAMILIALES = 0.15
PROCHE_CONNU = 0.85
AVEC_TELEPHONE = 0.85
AVEC_EMAIL = 0.55
# Seed 004 (Corrèze): in 48 % of referrals the problem was access to complementary insurance.
SITUATIONS = {"besoin-complementaire-sante": 0.48, "renoncement-aux-soins": 0.34,
              "difficulte-acces-aux-droits": 0.10, "rupture-de-droits": 0.06, "autre": 0.02}
# Seed 004: dental care, general practitioner or specialist, optics.
SOINS = ["dentaire", "optique", "generaliste", "specialiste", "audition", "sante-mentale"]
MOTIFS = ["reste-a-charge", "avance-de-frais", "complexite-administrative",
          "delais-de-rendez-vous", "eloignement", "isolement"]
# Share of deliberately invalid records (bad NIR key, unknown type, missing field).
INVALID_SHARE = 0.02

# Partners of the demo (detector kinds of services/signalement/partners.py).
PARTENAIRES: list[tuple[str, str, str]] = [
    ("ccas-la-rochelle", "CCAS de La Rochelle", "ccas"),
    ("mission-locale-rochefort", "Mission locale de Rochefort", "mission-locale"),
    ("pass-saintes", "PASS de l'hôpital de Saintes", "hopital-pass"),
    ("france-travail-royan", "France Travail Royan", "france-travail"),
]

SOURCES = {
    "retraite": "urn:fr:carsat:centre-ouest",
    "separation": "urn:fr:caf:{d}",
    "entree-invalidite": "urn:fr:elsm:{d}",
    "entree-ald": "urn:fr:elsm:{d}",
    "deces": "urn:fr:insee:etat-civil",
    "ase-17-ans": "urn:fr:departement:{d}:ase",
    "sortie-ase": "urn:fr:departement:{d}:ase",
    "declaration-grossesse": "urn:fr:cpam:{d}:maternite",
    "perte-emploi": "urn:fr:france-travail:{d}",
    "levee-ecrou": "urn:fr:spip:{d}",
    "depart-medecin-traitant": "urn:fr:cpam:{d}:medecin-traitant",
    "fin-droits-c2s": "urn:fr:cpam:{d}:c2s",
}

# Age (years) at the event, by kind: (low, high).
AGES: dict[str, tuple[int, int]] = {
    "retraite": (62, 64), "deces": (62, 97), "separation": (25, 55),
    "entree-invalidite": (30, 61), "entree-ald": (40, 85), "declaration-grossesse": (19, 42),
    "perte-emploi": (19, 60), "levee-ecrou": (19, 50), "depart-medecin-traitant": (18, 90),
    "fin-droits-c2s": (18, 70), "signalement": (18, 80), "sortie-ase": (18, 18),
    "ase-17-ans": (17, 17),
}
# When the event takes effect, in days from today: (low, high).
EFFETS: dict[str, tuple[int, int]] = {
    "retraite": (-60, 90), "deces": (-10, 0), "separation": (-60, 0),
    "entree-invalidite": (-30, 0), "entree-ald": (-30, 0), "declaration-grossesse": (-20, 0),
    "perte-emploi": (-30, 0), "levee-ecrou": (0, 45), "depart-medecin-traitant": (-15, 30),
    "fin-droits-c2s": (30, 90), "sortie-ase": (-30, 0), "ase-17-ans": (-30, 60),
}

Kind = Literal["evenement", "signalement", "invalide"]


@dataclass(frozen=True)
class Personne:
    nir: str
    sexe: str
    nom: str
    prenom: str
    date_naissance: date
    adresse: dict[str, str]
    telephone: str | None
    email: str | None
    sans_complementaire: bool
    sans_medecin_traitant: bool

    def assure(self) -> dict[str, Any]:
        out: dict[str, Any] = {"nir": self.nir, "nom": self.nom, "prenom": self.prenom,
                               "date_naissance": self.date_naissance.isoformat(),
                               "adresse": self.adresse}
        if self.telephone:
            out["telephone"] = self.telephone
        if self.email:
            out["email"] = self.email
        return out


@dataclass(frozen=True)
class Item:
    """One thing to feed: ``kind`` says how (Kafka record, HTTP referral, invalid record)."""

    kind: Kind
    name: str                      # life-event name, "signalement", or the expected reject code
    id: str
    payload: dict[str, Any] | None = None   # the CloudEvent, or the referral body
    raw: bytes | None = None                 # for an invalid record: its bytes
    partenaire: str | None = None            # for a referral: the partner id
    personne: Personne | None = field(default=None, compare=False)

    def value(self) -> bytes:
        """The bytes of the Kafka record (events and invalid records)."""
        if self.raw is not None:
            return self.raw
        return json.dumps(self.payload, ensure_ascii=False).encode("utf-8")


def nir_for(sexe: str, born: date, dept: str, commune: str, ordre: int) -> str:
    first13 = f"{sexe}{born.year % 100:02d}{born.month:02d}{dept}{commune}{ordre:03d}"
    return first13 + stdnum_nir.calc_check_digits(first13)


class Departement:
    """A synthetic population of one département, drawn from a seeded random generator."""

    def __init__(self, code: str = "17", seed: int = 17) -> None:
        if code not in COMMUNES:
            raise ValueError(f"unknown département {code!r}; known: {', '.join(sorted(COMMUNES))}")
        self.code = code
        self.nom = NOMS_DEPARTEMENT[code]
        self.rng = random.Random(seed)
        self.seed = seed
        self._nirs: set[str] = set()
        communes = COMMUNES[code]
        self._communes = [c[:3] for c in communes]
        self._weights = [c[3] for c in communes]

    # ---- people
    def personne(self, age: int, when: date, sexe: str | None = None,
                 born: date | None = None) -> Personne:
        """Someone aged exactly ``age`` at ``when`` (or born on ``born``)."""
        rng = self.rng
        sexe = sexe or rng.choice("12")
        if born is None:
            born = _years_before(when, age) - timedelta(days=rng.randint(0, 364))
        commune, cp, insee = rng.choices(self._communes, self._weights)[0]
        dept, lieu = (self.code, insee) if rng.random() < 0.6 else rng.choice(AUTRES_NAISSANCES)
        nir = ""
        while not nir or nir in self._nirs:
            nir = nir_for(sexe, born, dept, lieu, rng.randint(1, 999))
        self._nirs.add(nir)
        nom, prenom = rng.choice(NOMS), rng.choice(PRENOMS[sexe])
        telephone = (f"0{rng.choice('67')}{rng.randint(0, 99_999_999):08d}"
                     if rng.random() < AVEC_TELEPHONE else None)
        email = (f"{_ascii(prenom)}.{_ascii(nom)}{rng.randint(1, 99)}@exemple.fr"
                 if rng.random() < AVEC_EMAIL else None)
        return Personne(
            nir=nir, sexe=sexe, nom=nom, prenom=prenom, date_naissance=born,
            adresse={"ligne1": f"{rng.randint(1, 120)} {rng.choice(VOIES)}", "code_postal": cp,
                     "commune": commune},
            telephone=telephone, email=email,
            sans_complementaire=rng.random() < SANS_COMPLEMENTAIRE,
            sans_medecin_traitant=rng.random() < SANS_MEDECIN_TRAITANT,
        )

    # ---- the sample
    def sample(self, size: int, today: date, *, invalid_share: float = INVALID_SHARE,
               run: str | None = None) -> list[Item]:
        """``size`` items: life events, referrals and a few invalid records, shuffled.

        ``run`` goes into the CloudEvent ids (default: the seed and today's date), so two runs
        of the demo on the same day are the same events (deduplicated), another day new ones.
        """
        run = run or f"{self.seed}-{today.isoformat()}"
        kinds = list(EVENT_MIX)
        weights = [EVENT_MIX[k] for k in kinds]
        items: list[Item] = []
        for n in range(size):
            item_id = f"demo-{run}-{n:06d}"
            if self.rng.random() < invalid_share:
                items.append(self._invalid(item_id, today))
                continue
            name = self.rng.choices(kinds, weights)[0]
            if name == "signalement":
                items.append(self._referral(item_id, today))
            else:
                items.append(self._event(name, item_id, today))
        return items

    def _event(self, name: str, item_id: str, today: date) -> Item:
        rng = self.rng
        low, high = EFFETS[name]
        effet = today + timedelta(days=rng.randint(low, high))
        sexe = None
        if name == "declaration-grossesse":
            sexe = "2"
        elif name == "separation":
            sexe = "2" if rng.random() < SEPARATION_FEMME else "1"
        elif name == "levee-ecrou":
            sexe = "1" if rng.random() < 0.96 else "2"
        age = rng.randint(*AGES[name])
        if name == "ase-17-ans":
            # date_effet is the 17th birthday.
            personne = self.personne(17, effet, sexe, born=_years_before(effet, 17))
        else:
            personne = self.personne(age, effet, sexe)
        data: dict[str, Any] = {"assure": personne.assure(), "date_effet": effet.isoformat()}
        if name == "retraite":
            data["sans_complementaire"] = personne.sans_complementaire
        elif name == "separation":
            data["violences_intrafamiliales"] = rng.random() < VIOLENCES_INTRAFAMILIALES
            data["enfants_a_charge"] = rng.choice([0, 1, 1, 2, 2, 3])
        elif name == "entree-invalidite":
            data["categorie"] = rng.choices([1, 2, 3], [25, 70, 5])[0]
        elif name == "deces":
            if rng.random() < PROCHE_CONNU:
                proche: dict[str, Any] = {"nom": personne.nom, "prenom": rng.choice(
                    PRENOMS[rng.choice("12")]), "lien": rng.choice(LIENS),
                    "adresse": personne.adresse}
                if rng.random() < AVEC_TELEPHONE:
                    proche["telephone"] = f"06{rng.randint(0, 99_999_999):08d}"
                data["proche"] = proche
        elif name == "sortie-ase":
            data["date_fin_prise_en_charge"] = effet.isoformat()
        elif name == "declaration-grossesse":
            data["date_prevue_accouchement"] = (effet + timedelta(days=rng.randint(150, 230))
                                                ).isoformat()
        elif name == "levee-ecrou":
            data["beneficiaire_c2s"] = rng.random() < 0.4
        event = {
            "specversion": "1.0",
            "id": item_id,
            "source": SOURCES[name].format(d=self.code),
            "type": event_type(name),
            "time": f"{min(effet, today).isoformat()}T08:00:00Z",
            "datacontenttype": "application/json",
            "data": data,
        }
        return Item("evenement", name, item_id, payload=event, personne=personne)

    def _referral(self, item_id: str, today: date) -> Item:
        rng = self.rng
        personne = self.personne(rng.randint(*AGES["signalement"]), today)
        situation = rng.choices(list(SITUATIONS), list(SITUATIONS.values()))[0]
        soins = sorted(set(rng.sample(SOINS, rng.randint(1, 2))))
        if personne.sans_medecin_traitant and "generaliste" not in soins:
            soins.append("generaliste")
        body = {
            "personne": personne.assure(),
            "situation": situation,
            "soins_renonces": soins,
            "motifs": sorted(set(rng.sample(MOTIFS, rng.randint(1, 2)))),
            "consentement_contact": rng.random() < 0.95,
        }
        partenaire = rng.choice(PARTENAIRES)[0]
        return Item("signalement", "signalement", item_id, payload=body, partenaire=partenaire,
                    personne=personne)

    def _invalid(self, item_id: str, today: date) -> Item:
        """A record intake must refuse, with the reason code it must give."""
        name = self.rng.choice(["retraite", "deces", "separation"])
        event = self._event(name, item_id, today).payload
        assert event is not None
        kind = self.rng.randrange(3)
        if kind == 0:
            nir = event["data"]["assure"]["nir"]
            event["data"]["assure"]["nir"] = nir[:13] + f"{int(nir[13:]) % 97 + 1:02d}"
            code = "nir.cle"
        elif kind == 1:
            event["type"] = "fr.assurance-maladie.evenement-vie.mariage.v1"
            code = "type.inconnu"
        else:
            del event["data"]["date_effet"]
            code = "data.champ-manquant"
        return Item("invalide", code, item_id, raw=json.dumps(event, ensure_ascii=False).encode())


def _years_before(when: date, years: int) -> date:
    try:
        return when.replace(year=when.year - years)
    except ValueError:  # 29 February
        return when.replace(year=when.year - years, day=28)


def _ascii(text: str) -> str:
    import unicodedata

    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in plain.lower() if c.isalnum())


def counts(items: list[Item]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        key = item.name if item.kind != "invalide" else "invalide"
        out[key] = out.get(key, 0) + 1
    return out
