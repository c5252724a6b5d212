"""An outbox handler for the kill -9 test (imported by ``crm worker --import``): each job POSTs
its idempotency key to the URL in its payload, within the job's deadline."""

from __future__ import annotations

import json
from typing import Any
from urllib.request import Request, urlopen

from crmcore.outbox.service import register_handler, time_left


def post(crm: Any, message: Any) -> None:
    data = json.dumps({"key": message.idempotency_key, "n": message.payload["n"]}).encode()
    request = Request(message.payload["url"], data=data, method="POST",
                      headers={"Content-Type": "application/json", "Idempotency-Key": message.idempotency_key})
    with urlopen(request, timeout=time_left()) as response:
        if response.status != 200:
            raise ConnectionError(f"sink answered {response.status}")


register_handler("chaos-post", post, replace=True)
