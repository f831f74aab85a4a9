"""The queue dashboard at ``/queues/``: overview, listings, job pages, actions, health."""
