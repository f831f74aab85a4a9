"""Login throttling (per username and client address), signup limits, JSON-only serialisation."""

import os
import subprocess
import sys

import pytest
from celery import current_app
from django.contrib.auth.models import User
from django.core import mail
from django.core.cache import cache

from settings.environment import BASE_DIR
from tasks.models import Job


def test_admin_login_is_throttled_after_repeated_failures(db, client, settings):
    User.objects.create_superuser("root", "root@example.com", "right-password-123")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post("/admin/login/", {"username": "root", "password": "wrong"})
        assert response.status_code == 200  # the form again, with an error
    assert client.post("/admin/login/", {"username": "root", "password": "wrong"}).status_code == 429
    locked = client.post("/admin/login/", {"username": "root", "password": "right-password-123"})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_correct_login_before_the_limit_works(db, client):
    User.objects.create_superuser("root", "root@example.com", "right-password-123")
    client.post("/admin/login/", {"username": "root", "password": "wrong"})
    response = client.post("/admin/login/", {"username": "root", "password": "right-password-123"})
    assert response.status_code == 302


@pytest.mark.parametrize("setting", ["accept_content", "task_serializer", "result_serializer",
                                     "event_serializer"])
def test_json_only_everywhere(setting):
    value = current_app.conf[setting]
    assert value in ("json", ["json"]), (setting, value)


# -- lockouts by username *and* address, behind a proxy or not ---------------------------

PROXY = {"AXES_IPWARE_META_PRECEDENCE_ORDER": ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"),
         "AXES_IPWARE_PROXY_ORDER": "left-most", "AXES_IPWARE_PROXY_COUNT": 0}
ATTACKER, VICTIM = "81.2.69.142", "89.160.20.112"  # two public addresses (strings only)


def login(client, password: str, **meta) -> int:
    return client.post("/accounts/login/", {"username": "root", "password": password},
                       **meta).status_code


def hammer(client, settings, **meta) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT + 3):
        login(client, "wrong", **meta)
    assert login(client, "right-password-123", **meta) == 429  # locked for this address


def test_a_lockout_from_one_address_never_locks_the_account_for_another(db, client, settings):
    User.objects.create_superuser("root", "root@example.com", "right-password-123")
    hammer(client, settings, REMOTE_ADDR=ATTACKER)
    assert login(client, "right-password-123", REMOTE_ADDR=VICTIM) == 302
    assert "_auth_user_id" in client.session


def test_behind_a_proxy_the_forwarded_address_counts_and_cannot_be_forged(db, client, settings):
    """TRUSTED_PROXY_COUNT=1: the proxy appends the peer it saw; entries on its left are the
    client's to invent, so an attacker cannot pin failures on the victim's address."""
    for name, value in PROXY.items():
        setattr(settings, name, value)
    User.objects.create_superuser("root", "root@example.com", "right-password-123")
    proxy = {"REMOTE_ADDR": "127.0.0.1"}
    hammer(client, settings, HTTP_X_FORWARDED_FOR=f"{VICTIM}, {ATTACKER}", **proxy)
    assert login(client, "right-password-123", HTTP_X_FORWARDED_FOR=VICTIM, **proxy) == 302
    client.logout()
    # The proxy's own address is not the client: everyone else behind it still gets in.
    assert login(client, "right-password-123", HTTP_X_FORWARDED_FOR="5.6.7.8", **proxy) == 302
    from axes.models import AccessAttempt

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


def test_without_a_trusted_proxy_the_forwarded_header_is_ignored(db, client, settings):
    assert settings.TRUSTED_PROXY_COUNT == 0
    User.objects.create_superuser("root", "root@example.com", "right-password-123")
    for i in range(settings.AXES_FAILURE_LIMIT + 1):  # a new forged address each time
        login(client, "wrong", REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
    assert login(client, "right-password-123", REMOTE_ADDR=ATTACKER) == 429


@pytest.mark.parametrize("count, env_order", [(0, ("REMOTE_ADDR",)),
                                              (1, ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")),
                                              (2, ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"))])
def test_trusted_proxy_count_comes_from_the_environment(count, env_order):
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings as s;"
         "print(s.AXES_IPWARE_META_PRECEDENCE_ORDER, getattr(s, 'AXES_IPWARE_PROXY_COUNT', None))"],
        cwd=BASE_DIR, capture_output=True, text=True, timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "settings.test",
             "TRUSTED_PROXY_COUNT": str(count)})
    assert out.returncode == 0, out.stderr
    order, proxy_count = out.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert order == str(env_order)
    assert proxy_count == (str(count - 1) if count else "None")


# -- signup: limited per address and per email, off in production ------------------------


@pytest.fixture
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


def signup(client, n: int, email: str, address: str):
    return client.post("/signup/", {"username": f"user{n}", "email": email,
                                    "password1": "a-Long-pass-123", "password2": "a-Long-pass-123"},
                       REMOTE_ADDR=address)


def test_signup_is_limited_per_address(db, client, settings, fresh_cache):
    limit, _ = settings.SIGNUP_LIMIT_PER_ADDRESS
    codes = [signup(client, n, f"u{n}@example.com", ATTACKER).status_code
             for n in range(limit + 2)]
    assert codes == [201] * limit + [429, 429]
    assert "Too many signups from your address" in signup(client, 99, "x@example.com",
                                                          ATTACKER).content.decode()
    assert signup(client, 100, "y@example.com", VICTIM).status_code == 201
    assert User.objects.count() == limit + 1
    assert Job.objects.filter(name="send-welcome-email").count() == limit + 1


def test_signup_is_limited_per_email_whatever_the_address(db, client, settings, fresh_cache):
    limit, _ = settings.SIGNUP_LIMIT_PER_EMAIL
    codes = [signup(client, n, "Victim@Example.com", f"5.6.7.{n}").status_code
             for n in range(limit + 1)]
    assert codes == [201] * limit + [429]
    assert Job.objects.filter(name="send-welcome-email").count() == limit  # no more emails


def test_signup_can_be_turned_off(db, client, settings, fresh_cache):
    settings.SIGNUP_ENABLED = False
    assert client.get("/signup/").status_code == 404
    assert signup(client, 1, "a@example.com", VICTIM).status_code == 404
    assert User.objects.count() == 0


def test_password_reset_links_point_at_site_url_not_the_host_header(db, client, settings):
    settings.SITE_URL = "https://tasks.example.com"
    settings.ALLOWED_HOSTS = ["tasks.example.com", "other.example.com"]
    User.objects.create_user("ada", "ada@example.com", "pw-12345678")
    response = client.post("/accounts/password_reset/", {"email": "ada@example.com"},
                           HTTP_HOST="other.example.com")
    assert response.status_code == 302
    [message] = mail.outbox
    assert "https://tasks.example.com/accounts/reset/" in message.body
    assert "other.example.com" not in message.body
