"""Shared fixtures: the local Authorize.Net stand-in with known credentials, and the gateway."""

from __future__ import annotations

import pytest
from crm_payments_authorizenet.gateway import AuthorizeNetGateway
from crm_payments_authorizenet.testing import FakeAuthorizeNet

LOGIN = "5KP3u95bQpv"
TRANSACTION_KEY = "346HZ32z3fP4hTG2"
SIGNATURE_KEY = "9F3A1C0B7E2D4F6A" * 8


@pytest.fixture
def fake():
    with FakeAuthorizeNet(LOGIN, TRANSACTION_KEY, SIGNATURE_KEY) as server:
        yield server


@pytest.fixture
def gateway():
    return AuthorizeNetGateway()
