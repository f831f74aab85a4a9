"""gunicorn settings shared by docker-compose.yml and intelgraph-web.service.

The bind address is given on each command line (0.0.0.0 in a container,
127.0.0.1 behind a reverse proxy on the host). Static files come from
WhiteNoise inside the app, so the proxy only forwards.
"""

wsgi_app = "intelgraph.wsgi:application"

# 2 × cores + 1 sync workers is gunicorn's rule of thumb; requests here are short
# (API, admin, dashboard), the long work runs on the Celery workers.
workers = 3
worker_class = "sync"
timeout = 30
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak cannot grow without bound.
max_requests = 2000
max_requests_jitter = 200

# The reverse proxy is the only client: trust its X-Forwarded-* headers. Keep the
# port unreachable from anywhere else (published on 127.0.0.1 only).
forwarded_allow_ips = "*"

accesslog = "-"
errorlog = "-"
loglevel = "info"
