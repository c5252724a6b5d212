"""The invoice page's Payments table fits its card, in a real browser: at 1360 x 900 (a laptop,
where a provider's long payment id used to push it out of the card) and at 390 px (a phone,
where each payment becomes a block of labelled rows)."""

from __future__ import annotations

from decimal import Decimal

from crm_invoicing import payments, service

from crmcore.context import Context
from crmcore.payments.gateways import EventKind, PaymentEvent
from crmcore.testing import TEST_PASSWORD

from .conftest import line  # noqa: TID252
from .testgateway import NAME as GATEWAY  # noqa: TID252

PROVIDER_ID = "pi_3PqLmN2eZvKYlo2C1gH7kXyZ9aBcDeFgHiJkLmNoPq"  # Stripe-like: long, no break
MEASURE = """() => {
  const table = document.querySelector('#invoice-panel table.payments');
  const card = table.closest('section.card');
  const box = table.getBoundingClientRect(), cardBox = card.getBoundingClientRect();
  const cells = [...table.querySelectorAll('tbody td[data-label]')].map(td => {
    const r = td.getBoundingClientRect();
    return {name: td.dataset.label, width: r.width, text: td.innerText,
            before: getComputedStyle(td, '::before').content, font: parseFloat(getComputedStyle(td).fontSize),
            pad: parseFloat(getComputedStyle(td).paddingLeft),
            label: parseFloat(getComputedStyle(td, '::before').width)};
  });
  return {table: table.scrollWidth, card: card.clientWidth, cardScroll: card.scrollWidth,
          right: box.right, cardRight: cardBox.right, page: document.documentElement.clientWidth,
          head: getComputedStyle(table.querySelector('thead')).position, cells};
}"""


def test_the_payments_table_fits_its_card_on_a_laptop_and_a_phone(browse, inv, party, gateway, tmp_path):
    record = service.create_invoice(inv, {"party_id": party.id, "lines": [
        line(description="Consulting, on site", quantity="3", unit_price="950")]})
    service.activate_invoice(inv, record.id)  # 3,448.50
    started = payments.start_attempt(inv, service.renew_payment_link(inv, record.id), GATEWAY)
    with Context.open(inv.crm, inv.business.slug, system=True) as system:
        payments.apply_event(system, GATEWAY, PaymentEvent(
            EventKind.SUCCEEDED, None, PROVIDER_ID, Decimal("1000.00"), "EUR", attempt_id=started.attempt_id))
    by_hand = service.record_payment(inv, record.id, {
        "amount": "2500", "method": "bank_transfer", "overpayment": True,
        "reference": "NL91ABNA0417164300-INV-REFERENCE-WITHOUT-ANY-SPACES-AT-ALL",
        "note": "Paid twice by mistake, part to give back"})
    service.record_refund(inv, by_hand.id, {"amount": "51.50", "note": "Overpayment given back"})
    inv.session.rollback()
    assert service.get_invoice(inv, record.id).invoice.status == "paid"
    seen: dict[str, dict] = {}

    def look(page) -> None:
        page.goto("/login")
        page.fill("#email", "owner@acme.example")
        page.fill("#password", TEST_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("header.topbar")
        for name, size in (("laptop", {"width": 1360, "height": 900}), ("phone", {"width": 390, "height": 844})):
            page.set_viewport_size(size)
            page.goto(f"/records/{record.id}")
            page.wait_for_selector("#invoice-panel table.payments")
            seen[name] = page.evaluate(MEASURE)
            seen[name]["text"] = page.inner_text("#invoice-panel table.payments")
            page.locator("#invoice-panel table.payments").screenshot(path=str(tmp_path / f"payments-{name}.png"))

    browse(look)
    assert (tmp_path / "payments-phone.png").stat().st_size > 0
    for name, got in seen.items():
        assert got["table"] <= got["card"], (name, got["table"], got["card"])
        assert got["cardScroll"] <= got["card"] and got["right"] <= got["cardRight"] + 0.5, name
        assert PROVIDER_ID in got["text"] and "€1,000.00" in got["text"] and "€2,500.00" in got["text"], name
        assert "−€51.50" in got["text"] or "-€51.50" in got["text"], name
        assert all(cell["font"] >= 12 for cell in got["cells"]), name
    laptop, phone = seen["laptop"], seen["phone"]
    assert laptop["head"] != "absolute"  # a table with its column heads
    # the phone: the heads are hidden and every cell says what it is, at a readable width
    assert phone["page"] == 390 and phone["head"] == "absolute"
    assert {c["name"] for c in phone["cells"]} == {"Received", "Method", "Amount", "Reference"}
    assert all(c["before"] == f'"{c["name"]}"' for c in phone["cells"])
    assert all(c["pad"] > c["label"] > 40 for c in phone["cells"])  # the label beside the value, not over it
    assert min(c["width"] for c in phone["cells"]) > 250
