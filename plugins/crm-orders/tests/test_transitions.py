"""A hypothesis state machine drives random orders of both kinds through random steps (edit,
fulfil, hand over, return, cancel, invoice) and checks each outcome against the rules: a step
succeeds exactly when the kind and status allow it, the stored status is the expected one,
and a locked order's lines never change."""

from __future__ import annotations

from decimal import Decimal as D

from crm_orders import service
from crm_orders.rules import TRANSITIONS
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, rule, run_state_machine_as_test

from crmcore.errors import Conflict, ValidationFailed

from .conftest import line, new_party  # noqa: TID252

ACTIONS = ("edit", "fulfil", "hand_over", "return", "cancel", "invoice")
STEP_TO = {"fulfil": "fulfilled", "hand_over": "out", "return": "returned", "cancel": "cancelled"}
#: the moves of docs/orders.md, written out here (not read from the code under test)
ALLOWED = {("sales", "open", "fulfilled"), ("sales", "open", "cancelled"), ("loaner", "open", "out"),
           ("loaner", "out", "returned"), ("loaner", "open", "cancelled")}


def expected(kind: str, status: str, lines: int, invoiced: bool, action: str) -> str | None:
    """The status after ``action`` when the rules allow it, else None."""
    if action == "edit":
        return status if status == "open" else None
    if action == "invoice":
        if invoiced or lines == 0:
            return None
        if kind == "sales":
            return "invoiced" if status in ("open", "fulfilled") else None
        return status if status in ("out", "returned") else None
    target = STEP_TO[action]
    if (kind, status, target) not in ALLOWED:
        return None
    if action == "fulfil" and lines == 0:
        return None
    return target


def test_transitions_and_the_lock(inv):
    ctx = inv
    party = new_party(ctx)

    class Orders(RuleBasedStateMachine):
        orders = Bundle("orders")

        def __init__(self) -> None:
            super().__init__()
            self.model: dict[int, dict] = {}

        @rule(target=orders, kind=st.sampled_from(["sales", "loaner"]), lines=st.integers(0, 2))
        def create(self, kind: str, lines: int) -> int:
            record = service.create_order(ctx, {"kind": kind, "party_id": party.id, "unit_description": None
                                                if kind == "sales" else "Demo unit",
                                                "lines": [line(unit_price=str(10 + i)) for i in range(lines)]})
            self.model[record.id] = {"kind": kind, "status": "open", "lines": lines, "invoiced": False}
            return record.id

        @rule(record_id=orders, action=st.sampled_from(ACTIONS))
        def act(self, record_id: int, action: str) -> None:
            state = self.model[record_id]
            want = expected(state["kind"], state["status"], state["lines"], state["invoiced"], action)
            before = [(ln.description, ln.unit_price) for ln in service.get_order(ctx, record_id).lines]
            calls = {
                "edit": lambda: service.set_lines(ctx, record_id, [line(description="Edited", unit_price="7")]),
                "fulfil": lambda: service.fulfil_order(ctx, record_id),
                "hand_over": lambda: service.hand_over(ctx, record_id),
                "return": lambda: service.return_unit(ctx, record_id),
                "cancel": lambda: service.cancel_order(ctx, record_id, "Property test"),
                "invoice": lambda: service.create_invoice(ctx, record_id),
            }
            try:
                calls[action]()
                done = True
            except (Conflict, ValidationFailed):
                done = False
            assert done == (want is not None), (state, action)
            view = service.get_order(ctx, record_id)
            if done:
                state["status"] = want
                if action == "edit":
                    state["lines"] = 1
                if action == "invoice":
                    state["invoiced"] = True
            assert view.order.status == state["status"]
            after = [(ln.description, ln.unit_price) for ln in view.lines]
            if action == "edit" and done:
                assert after == [("Edited", D("7"))]
            else:
                assert after == before  # a refused step, or any other step, leaves the lines alone
            assert view.locked == (state["status"] != "open")
            assert ("edit" in view.actions) == (state["status"] == "open")
            if state["status"] != "open":  # the lock, checked after every step of a locked order
                try:
                    service.update_order(ctx, record_id, {"notes": "a late change"})
                    locked = False
                except Conflict:
                    locked = True
                assert locked and service.get_order(ctx, record_id).order.notes is None

    run_state_machine_as_test(Orders, settings=settings(
        max_examples=20, stateful_step_count=15, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))


def test_the_transition_table_has_no_way_out_of_a_final_state():
    for kind, table in TRANSITIONS.items():
        for final in ("cancelled", "invoiced" if kind == "sales" else "returned"):
            assert table[final] == frozenset()
        assert all(status in table for targets in table.values() for status in targets)
        assert "open" not in {s for targets in table.values() for s in targets}  # nothing reopens
