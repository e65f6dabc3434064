"""The error pages staff meet are Callscribe's own: in its layout, saying what happened and what to do
next."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.defaults import server_error
from pytest_django.fixtures import Settings as SettingsWrapper

from calls.models import Call
from tests.calls.conftest import logged_in

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def production(settings: SettingsWrapper) -> None:
    settings.DEBUG = False  # with DEBUG on, Django shows its technical pages instead


def test_a_missing_page_is_the_products_own(staff_user: User) -> None:
    response = logged_in(staff_user).get("/no-such-page/")

    assert response.status_code == 404
    page = response.content.decode()
    assert "<h1>Not found</h1>" in page
    assert 'href="/calls/"' in page  # the product's layout, with its way back
    # A call out of scope gets this same page: tests/calls/test_scope.py


def test_an_expired_form_says_so_and_changes_nothing(staff_user: User) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff_user)

    response = browser.post(reverse("logout"))

    assert response.status_code == 403
    page = response.content.decode()
    assert "This form has expired" in page
    assert "Nothing was changed" in page
    assert browser.get(reverse("calls-list")).status_code == 200  # still logged in


def test_an_action_the_account_may_not_take_is_refused_in_the_products_words(staff_user: User, call: Call) -> None:
    response = logged_in(staff_user).get(reverse("calls-delete", args=[call.id]))

    assert response.status_code == 403
    assert "Your account may not do this" in response.content.decode()


def test_a_request_for_another_host_gets_the_bad_request_page(staff_user: User) -> None:
    response = logged_in(staff_user).get(reverse("calls-list"), HTTP_HOST="callscribe.evil.example")

    assert response.status_code == 400
    assert "could not be understood" in response.content.decode()


def test_the_server_error_page_renders_without_a_request_context() -> None:
    """Django renders it with no context at all, so it must not depend on one (a user, messages)."""
    response = server_error(RequestFactory().get("/calls/"))

    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()
