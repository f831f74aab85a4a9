"""The full-strength soak (issue 18): producers enqueue while a chaos loop kills
everything that can die; a checker reads what the producers saw committed.

- ``plan``: what each job is meant to do, and the chaos minimums per size;
- ``producer``: a producer process (``python -m tests.reliability.soak.producer``);
- ``chaos``: the service's processes and the loop that kills them;
- ``checker``: every committed id against the database, one summary line.
"""
