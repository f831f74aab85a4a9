"""Settings package: ``base`` holds everything, ``dev``/``test``/``prod`` adjust it."""
