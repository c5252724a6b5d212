"""Screenshots of the main admin pages on the demo business, for the README.

Run: python scripts/screenshots.py   (needs Debian's chromium and the playwright package)
Seeds the demo into a temporary instance, serves it on loopback and saves PNGs to docs/screenshots/.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from crmcore.config import Config
from crmcore.demo import DEMO_OWNER, DEMO_PASSWORD, seed_demo
from crmcore.migrations.runner import upgrade
from crmcore.runtime import Crm
from crmcore.web import create_app

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    OUT.mkdir(parents=True, exist_ok=True)
    instance = Path(tempfile.mkdtemp(prefix="crm-shots-"))
    config = Config.load(instance).ensure_instance()
    crm = Crm.from_config(config)
    upgrade(crm.db.engine, crm.registry)
    seed_demo(crm, parties=40)
    with crm.context("demo", DEMO_OWNER) as ctx:
        from crmcore.parties.service import list_parties
        from crmcore.records.service import list_records

        party = list_parties(ctx, {"is_customer": True}, limit=1).items[0]
        deal = list_records(ctx, record_type="deal", filters={"party_id": party.id}, limit=1).items[0]
        party_id, deal_id = party.id, deal.id
    app = create_app(crm=crm)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    pages = {
        "parties": "/parties/",
        "party-sheet": f"/parties/{party_id}",
        "deals-board": "/records/deal/board",
        "deal": f"/records/{deal_id}",
        "my-actions": "/actions/mine",
        "settings-plugins": "/settings/plugins",
    }
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(base + "/login")
        page.fill("#email", DEMO_OWNER)
        page.fill("#password", DEMO_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("header.topbar")
        for name, path in pages.items():
            page.goto(base + path)
            page.screenshot(path=str(OUT / f"{name}.png"), full_page=False)
            print(f"docs/screenshots/{name}.png")
        browser.close()
    server.shutdown()


if __name__ == "__main__":
    main()
