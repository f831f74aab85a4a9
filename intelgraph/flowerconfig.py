"""Flower's configuration file: ``celery -A intelgraph flower --conf=intelgraph/flowerconfig.py``.

Credentials come from ``FLOWER_BASIC_AUTH`` in Flower's environment (``make run``
generates one into ``var/``), never from its command line, which ``ps`` shows to
every user. Flower would read that variable by itself, but it accepts an empty
value (then any ``Basic`` header with an empty credential gets in) and any
placeholder; here both stop Flower before it listens.
"""

from settings.environment import flower_basic_auth

basic_auth = flower_basic_auth()
