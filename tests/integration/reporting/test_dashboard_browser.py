"""The dashboard in a real headless Chromium (Debian's chromium + chromedriver, via selenium):
it loads, the charts draw with the data of a run, no console error; a screenshot is kept in
``test-artifacts/reporting-dashboard.png``."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path
from typing import Any

import uvicorn

from services.reporting.app import create_app
from shared.clock import ManualClock
from tests.integration.reporting import scenarios
from tests.integration.reporting.test_indicators_flow import caught_up, counts, publish
from tests.support import ROOT, auth_headers, token

ARTIFACT = ROOT / "test-artifacts" / "reporting-dashboard.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _browse(url: str, screenshot: Path) -> dict[str, Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1800",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options
    )
    try:
        driver.get(url)
        WebDriverWait(driver, 30).until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-charge") == "oui"
        )
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
        text = driver.find_element(By.TAG_NAME, "body").text
        return {
            "title": driver.title,
            "bars": len(driver.find_elements(By.CSS_SELECTOR, "#graphique-volumes rect.barre")),
            "points": len(driver.find_elements(By.CSS_SELECTOR, "#graphique-48h circle.point")),
            "funnel": len(driver.find_elements(By.CSS_SELECTOR, "#graphique-entonnoir rect.barre")),
            "detectors": [
                r.text for r in driver.find_elements(By.CSS_SELECTOR, "#table-detecteurs tbody tr")
            ],
            "lag": [
                r.text for r in driver.find_elements(By.CSS_SELECTOR, "#table-retard tbody tr")
            ],
            "kpi48": driver.find_element(By.ID, "kpi-48h").text,
            "misas": driver.find_element(By.ID, "kpi-misas").text,
            "text": text,
            "errors": [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")],
        }
    finally:
        driver.quit()


async def test_the_dashboard_draws_a_run_in_headless_chromium(
    topics: str, make_settings: Any
) -> None:
    s = make_settings("reporting")
    events = scenarios.misas()
    port = _free_port()
    app = create_app(s, clock=ManualClock(scenarios.MISAS_NOW))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        import httpx

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     headers=auth_headers("lecteur-indicateurs", None)) as http:

            async def up() -> bool:
                try:
                    return (await http.get("/health/live")).status_code == 200
                except httpx.HTTPError:
                    return False

            from tests.support import eventually

            await eventually(up, timeout=30)
            await publish(s, events)
            await caught_up(http, counts(events))
            seen = await asyncio.to_thread(
                _browse, f"http://127.0.0.1:{port}/tableau-de-bord#jeton="
                + token("lecteur-indicateurs", None), ARTIFACT
            )
    finally:
        server.should_exit = True
        await task
    assert seen["errors"] == [], seen["errors"]
    assert seen["title"].startswith("Parcours attentionnés")
    assert seen["bars"] > 0 and seen["points"] >= 1 and seen["funnel"] == 4
    assert seen["kpi48"] == "66,67 %" and seen["misas"] == "48 %"
    assert any(r.startswith("ccas:ccas-91-evry 4 4 3 75 %") for r in seen["detectors"]), seen[
        "detectors"
    ]
    assert any("parcours.resultats reporting-resultats" in r for r in seen["lag"]), seen["lag"]
    assert "Fraîcheur des indicateurs" in seen["text"]
    assert ARTIFACT.stat().st_size > 10_000
