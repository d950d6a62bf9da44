"""HTTP API of reporting: indicator tables (JSON or CSV), freshness and lag, the dashboard."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from services.reporting import indicators as ind
from services.reporting.cache import DEFAULT_CONVERSION, Conversion, EnCalcul, IndicatorsCache
from services.reporting.handlers import Deps
from services.reporting.lag import consumer_lag, freshness
from shared.auth import LECTEUR, SUPERVISEUR, require
from shared.logging import get_logger

log = get_logger("reporting.api")

DASHBOARD = Path(__file__).with_name("dashboard.html")
Table = Enum("Table", {name.replace("-", "_"): name for name in ind.TABLES}, type=str)  # type: ignore[misc]


def _filtre(
    du: date | None,
    au: date | None,
    granularite: str,
    par: str | None,
    values: dict[str, str | None],
) -> ind.Filtre:
    try:
        return ind.Filtre(
            du=du,
            au=au,
            granularite=granularite,
            par=tuple(x.strip() for x in (par or "").split(",") if x.strip()),
            valeurs={k: v for k, v in values.items() if v},
        )
    except ValueError as exc:
        raise HTTPException(422, {"erreur": "requete-invalide", "message": str(exc)}) from exc


def to_csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return out.getvalue()


Du = Annotated[date | None, Query(description="First day (Paris time) included.")]
Au = Annotated[date | None, Query(description="Last day (Paris time) included.")]
Gran = Annotated[Literal["jour", "semaine", "mois"], Query(description="Period of each row.")]
Par = Annotated[
    str | None,
    Query(
        description="Dimensions to break down by, comma separated, "
        f"among {', '.join(ind.DIMENSIONS)}."
    ),
]
Dim = Annotated[
    str | None, Query(description=f"Keep only this value ('{ind.NON_RENSEIGNE}' for none).")
]
EN_CALCUL: dict[int | str, dict[str, Any]] = {503: {
    "description": "No figures yet after a start: they are being computed from the whole "
                   "store; ask again after Retry-After seconds."}}
Fmt = Annotated[Literal["json", "csv"], Query(alias="format", description="json or csv.")]
Modele = Annotated[str, Query(description="conversion only: template of the letter.")]
Objectif = Annotated[str, Query(description="conversion only: the goal's life event.")]
Fenetre = Annotated[int, Query(ge=1, le=36, description="conversion only: window, months.")]


@dataclass(frozen=True)
class TableQuery:
    """What a table is asked with (the same for JSON and CSV)."""

    table: str
    filtre: ind.Filtre
    conversion: Conversion

    def echo(self) -> dict[str, Any]:
        """The filters as the answer repeats them."""
        f = self.filtre
        return {
            "du": f.du.isoformat() if f.du else None,
            "au": f.au.isoformat() if f.au else None,
            "granularite": f.granularite,
            "par": list(f.par),
            **f.valeurs,
            **(dict(zip(("modele", "objectif", "fenetre_mois"), self.conversion, strict=True))
               if self.table == "conversion" else {}),
        }


def table_query(
    table: Table,
    du: Du = None,
    au: Au = None,
    granularite: Gran = "jour",  # type: ignore[valid-type]
    par: Par = None,
    parcours: Dim = None,
    detecteur: Dim = None,
    departement: Dim = None,
    commune: Dim = None,
    canal: Dim = None,
    modele: Modele = ind.CONVERSION_MODELE,
    objectif: Objectif = ind.CONVERSION_OBJECTIF,
    fenetre_mois: Fenetre = ind.CONVERSION_FENETRE_MOIS,
) -> TableQuery:
    dims = dict(parcours=parcours, detecteur=detecteur, departement=departement,
                commune=commune, canal=canal)
    return TableQuery(table.value, _filtre(du, au, granularite, par, dims),
                      _params(table.value, modele, objectif, fenetre_mois))


Asked = Annotated[TableQuery, Depends(table_query)]


def router(get_deps: Callable[[], Deps], cubes: IndicatorsCache, *,
           dashboard_public: bool = False) -> APIRouter:
    """Indicators for reporting readers and supervisors (no person-level data). The dashboard
    page is always served; it sends the token the reader pasted into it (sessionStorage); its
    data endpoint is open only with ``dashboard_public``."""
    r = APIRouter(dependencies=[])
    lecteur = [Depends(require(LECTEUR, SUPERVISEUR))]
    tableau = [] if dashboard_public else lecteur

    async def cube_for(conversion: Conversion = DEFAULT_CONVERSION) -> ind.Cube:
        try:
            return await cubes.get(get_deps(), conversion)
        except EnCalcul as exc:
            raise HTTPException(
                503,
                {"erreur": "indicateurs-en-calcul",
                 "message": "the indicators are being computed from the whole store (after a "
                            f"start); ask again in {exc.retry_after} s"},
                headers={"Retry-After": str(exc.retry_after)},
            ) from exc

    async def answer(q: TableQuery, fmt: str) -> Response:
        cube = await cube_for(q.conversion)
        rows = cube.rows(q.table, q.filtre)
        cols = ind.columns(q.table, q.filtre)
        if fmt == "csv":
            return Response(
                to_csv(cols, rows),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{q.table}.csv"'},
            )
        return JSONResponse(
            {
                "table": q.table,
                "titre": ind.TABLE_TITLES[q.table],
                "colonnes": cols,
                "lignes": rows,
                "calcule_le": cube.now.isoformat(),
                "filtres": q.echo(),
            }
        )

    @r.get("/v1/indicateurs", tags=["indicateurs"], summary="The tables and their definitions",
           dependencies=lecteur)
    async def catalogue() -> dict[str, Any]:
        return {
            "tables": [
                {
                    "table": t,
                    "titre": ind.TABLE_TITLES[t],
                    "colonnes": ["periode", *ind.TABLE_COLUMNS[t]],
                    "json": f"/v1/indicateurs/{t}",
                    "csv": f"/v1/indicateurs/{t}.csv",
                }
                for t in ind.TABLES
            ],
            "dimensions": list(ind.DIMENSIONS),
            "granularites": list(ind.GRANULARITES),
            "definitions": ind.__doc__,
        }

    @r.get(
        "/v1/indicateurs/{table}.csv",
        tags=["indicateurs"],
        summary="A table as CSV",
        dependencies=lecteur,
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}}, **EN_CALCUL},
    )
    async def table_csv(q: Asked) -> Response:
        return await answer(q, "csv")

    @r.get(
        "/v1/indicateurs/{table}",
        tags=["indicateurs"],
        summary="A table (JSON, or CSV with ?format=csv)",
        dependencies=lecteur,
        response_class=Response,
        responses={200: {"content": {"application/json": {}, "text/csv": {}}}, **EN_CALCUL},
    )
    async def table_json(q: Asked, fmt: Fmt = "json") -> Response:
        return await answer(q, fmt)

    async def etat() -> dict[str, Any]:
        deps = get_deps()
        now = deps.clock.now()
        try:
            lag_rows = await consumer_lag(deps.settings)
        except Exception as exc:  # the page still shows the indicators when Kafka is slow
            log.warning("retard des consommateurs indisponible", error=repr(exc))
            lag_rows = []
        positions = await deps.store.load_positions()
        return {
            "maintenant": now.isoformat(),
            "retard_consommateurs": lag_rows,
            "fraicheur": freshness(positions, lag_rows, deps.settings, now),
        }

    @r.get(
        "/v1/etat",
        tags=["fraîcheur"],
        summary="Freshness of the indicators and consumer lag per topic and group",
        dependencies=lecteur,
    )
    async def etat_route() -> dict[str, Any]:
        return await etat()

    @r.get(
        "/v1/tableau-de-bord/donnees",
        tags=["tableau de bord"],
        summary="Everything the dashboard page draws, in one answer",
        dependencies=tableau,
        responses=EN_CALCUL,
    )
    async def dashboard_data(
        du: Du = None, au: Au = None, granularite: Gran = "jour"
    ) -> dict[str, Any]:
        cube = await cube_for()

        def t(
            table: str, par: tuple[str, ...] = (), gran: str | None = None
        ) -> list[dict[str, Any]]:
            return cube.rows(table, ind.Filtre(du=du, au=au, granularite=gran or granularite,
                                               par=par))

        whole = "mois" if granularite == "mois" else granularite
        return {
            "volumes": t("volumes", gran=whole),
            "prise_en_charge_48h": t("prise-en-charge-48h", gran=whole),
            "entonnoir": _total(
                t("entonnoir", gran="mois"),
                ["demandes", "orientees", "contactees", "objectif_atteint"],
            ),
            "detecteurs": _merge_periods(
                t("pertinence-detecteurs", ("detecteur",), "mois"),
                "detecteur",
                ["saisines", "dossiers_ouverts", "accompagnements"],
            ),
            "rejets": _merge_periods(t("rejets", gran="mois"), "code", ["valeur"]),
            "conversion": _total(
                t("conversion", gran="mois"),
                ["personnes", "converties_dans_la_fenetre", "converties_apres_la_fenetre"],
            ),
            "misas": _total(
                t("misas", gran="mois"),
                [
                    "accompagnements_termines",
                    "avec_soins_ou_inclusion",
                    "interrompus",
                    "interrompus_avec_droits",
                ],
            ),
            "calcule_le": cube.now.isoformat(),
            "etat": await etat(),
        }

    @r.get("/", response_class=HTMLResponse, tags=["tableau de bord"], summary="Dashboard page")
    @r.get(
        "/tableau-de-bord",
        response_class=HTMLResponse,
        tags=["tableau de bord"],
        summary="Dashboard page",
    )
    async def page() -> HTMLResponse:
        return HTMLResponse(DASHBOARD.read_text(encoding="utf-8"))

    return r


def _params(table: str, modele: str, objectif: str, fenetre: int) -> Conversion:
    """The conversion's parameters (the other tables do not depend on them)."""
    return (modele, objectif, fenetre) if table == "conversion" else DEFAULT_CONVERSION


def _total(rows: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: sum(r.get(k) or 0 for r in rows) for k in keys}
    if "converties_dans_la_fenetre" in out:
        out["taux_conversion"] = ind.ratio(out["converties_dans_la_fenetre"], out["personnes"])
    if "avec_soins_ou_inclusion" in out:
        out["indicateur_composite"] = ind.misas_composite(
            out["avec_soins_ou_inclusion"], out["interrompus"], out["interrompus_avec_droits"]
        )
    return out


def _merge_periods(rows: list[dict[str, Any]], by: str, keys: list[str]) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for r in rows:
        m = merged.setdefault(r[by], {by: r[by], **{k: 0 for k in keys}})
        for k in keys:
            m[k] += r.get(k) or 0
    out = sorted(merged.values(), key=lambda m: (-m[keys[0]], m[by]))
    if "accompagnements" in keys:
        for m in out:
            m["taux_pertinence"] = ind.ratio(m["accompagnements"], m["saisines"])
    return out
