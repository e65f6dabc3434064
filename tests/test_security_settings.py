"""The documented production settings (docs/deployment.md) as an attacker's probe sees them:
`check --deploy` has nothing to say, HTTPS is enforced, and pages carry HSTS and a CSP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.servers import AppServer, run_app_server

PROJECT = Path(__file__).resolve().parent.parent

# docs/deployment.md's /etc/callscribe/env, with stand-ins for its secrets.
PRODUCTION = {
    "DEBUG": "False",
    "SECRET_KEY": "k3#9vQ!x7Lm2@pR8sT5wZ1yB4nC6dF0gH-jK_eU*aW&iO^qY%2r",
    "ALLOWED_HOSTS": "callscribe.example.com,127.0.0.1",
    "CSRF_TRUSTED_ORIGINS": "https://callscribe.example.com",
    "PUBLIC_BASE_URL": "https://callscribe.example.com",
    "ACS_RESOURCE_ID": "00000000-0000-0000-0000-000000000001",
    "RECOVERY_WORKER": "False",
}


def test_check_deploy_has_nothing_to_say_about_the_documented_production_settings() -> None:
    env = {**os.environ, **PRODUCTION, "DJANGO_SETTINGS_MODULE": "config.settings"}
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    result = subprocess.run(command, env=env, cwd=PROJECT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db(transaction=True)
def test_production_serves_https_only_with_hsts_and_a_content_security_policy(django_db_setup: None) -> None:
    with run_app_server(**PRODUCTION) as server:
        plain = requests.get(f"{server.base_url}/accounts/login/", allow_redirects=False, timeout=10)
        https = requests.get(f"{server.base_url}/accounts/login/", headers={"X-Forwarded-Proto": "https"}, timeout=10)
        probes = [requests.get(f"{server.base_url}{path}", timeout=10) for path in ("/healthz", "/readyz")]

    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://127.0.0.1:{server.port}/accounts/login/"
    assert https.status_code == 200
    assert https.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    policy = https.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "object-src 'none'" in policy
    # A local load balancer probes over plain HTTP and must not be sent to HTTPS.
    assert [probe.status_code for probe in probes] == [200, 200]


def test_the_documented_nginx_replaces_x_forwarded_for_instead_of_appending() -> None:
    """daphne takes the leftmost address: appending would let a client choose the address the login
    lockout counts, a new one for every guess."""
    deployment = (PROJECT / "docs" / "deployment.md").read_text()
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for" not in deployment
    assert deployment.count("proxy_set_header X-Forwarded-For $remote_addr;") == 2


@pytest.mark.django_db(transaction=True)
def test_daphne_answers_a_locked_out_login_with_429(staff_user: object, app_server: AppServer) -> None:
    """Through daphne the lockout page comes from axes' async middleware path."""
    answers = []
    for password in ["wrong"] * 5 + ["correct horse battery staple"]:
        browser = requests.Session()
        browser.get(f"{app_server.base_url}/accounts/login/", timeout=10)
        form = {"username": "alice", "password": password, "csrfmiddlewaretoken": browser.cookies["csrftoken"]}
        response = browser.post(f"{app_server.base_url}/accounts/login/", data=form, allow_redirects=False, timeout=10)
        answers.append(response.status_code)
    assert answers == [200, 200, 200, 200, 429, 429]
    assert "Too many failed attempts" in response.text
    assert response.headers["Retry-After"] == "300"


def test_a_plain_http_public_address_is_served_without_a_redirect() -> None:
    """The benchmarks run with DEBUG off on http://127.0.0.1: there is no HTTPS to redirect to."""
    env = {**os.environ, **PRODUCTION, "PUBLIC_BASE_URL": "http://127.0.0.1:8000"}
    command = [
        sys.executable,
        "-c",
        "import django; django.setup(); from django.conf import settings; print(settings.SECURE_SSL_REDIRECT)",
    ]
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    result = subprocess.run(command, env=env, cwd=PROJECT, capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"
