"""The dashboard's door: a login, then the permission each page or action needs.

Anonymous visitors are sent to the login page; a signed-in user without the
permission gets 403 (staff status alone grants nothing here).
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest


def check(request: HttpRequest, permission: str) -> None:
    """Raise 403 unless the signed-in user holds ``permission``."""
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"this needs the {permission!r} permission")


def permission_required(permission: str):
    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            check(request, permission)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
