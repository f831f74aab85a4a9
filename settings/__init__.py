"""Settings package: ``base`` holds everything, ``dev``/``test``/``prod`` adjust it.

Loading it makes every file the process creates from then on owner-only
(umask 077): ``var/`` holds the database, mail, Flower's state and generated
secrets, ``logs/`` the logs. Every process of the service (web, workers, beat,
promoter, Flower, ``manage.py``) loads settings before it writes there.
"""

import os

OWNER_ONLY_UMASK = 0o077
os.umask(OWNER_ONLY_UMASK)
