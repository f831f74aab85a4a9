"""Test-only processors and a side-effect ledger, installed by ``settings.test``."""
