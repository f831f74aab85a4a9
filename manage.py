#!/usr/bin/env python
"""Django's command-line utility for IntelGraph Tasks."""

import os
import sys


def main() -> None:
    from settings import OWNER_ONLY_UMASK

    os.umask(OWNER_ONLY_UMASK)  # owner-only var/ and logs/ from the first file on
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
