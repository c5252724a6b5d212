"""pytest fixtures for code that takes payments through Stripe (registered by the ``pytest11``
entry point of this distribution, so any test in the environment can ask for them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from crm_payments_stripe.testing import FakeStripe


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    """A running local Stripe (:class:`crm_payments_stripe.testing.FakeStripe`) with fresh test
    credentials; ``fake_stripe.settings()`` are the plugin settings that point at it."""
    from crm_payments_stripe.testing import FakeStripe

    with FakeStripe.random() as fake:
        yield fake
