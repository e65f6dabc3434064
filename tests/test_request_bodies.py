"""A POST's body goes to the application as sent: daphne's Twisted does not parse forms on the event
loop first (compat/daphne.py), so the application gives its own answer to any body."""

from __future__ import annotations

import pytest
import requests

from tests.servers import AppServer

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_body_twisted_could_not_parse_as_a_form_gets_the_applications_own_answer(app_server: AppServer) -> None:
    response = requests.post(
        f"{app_server.base_url}/api/incoming-call",
        data=b"not a form at all",
        headers={"Content-Type": "multipart/form-data"},  # and no boundary
        timeout=10,
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith("The body is not valid JSON")
