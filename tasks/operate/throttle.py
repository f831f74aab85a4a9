"""Fixed-window counters in Django's cache: how many times a key was used in a window.

Used for ``/signup/`` (per client address, per email). Keys are hashed, so an
email or an IPv6 address never meets a cache backend's key rules.
"""

from __future__ import annotations

import hashlib

from django.core.cache import cache


def allow(scope: str, value: str, limit: int, window_s: int) -> bool:
    """Count one use of ``value`` in ``scope``; False once ``limit`` uses are exceeded."""
    key = f"throttle:{scope}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"
    cache.add(key, 0, timeout=window_s)  # starts the window; a no-op while it runs
    try:
        used = cache.incr(key)
    except ValueError:  # expired between add and incr: a new window
        cache.set(key, 1, timeout=window_s)
        used = 1
    return used <= limit
