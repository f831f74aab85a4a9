"""Login throttling and JSON-only serialisation."""

import pytest
from celery import current_app
from django.contrib.auth.models import User


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
