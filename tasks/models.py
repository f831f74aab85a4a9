"""Job records (the source of truth for every job) and what the processors store."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from tasks.jobs.config import JobPriority, QueueName
from tasks.jobs.permissions import CUSTOM as JOB_PERMISSIONS
from tasks.jobs.states import JobState


class Literal(models.Value):
    """A constant written into the SQL text (``state = 'waiting'``), not bound as ``?``.

    SQLite plans a statement from its text, and uses a partial index only when
    the statement repeats the index's condition term for term. From
    ``state = ?`` it cannot tell that a partial index ``WHERE state =
    'waiting'`` applies: the plan is a scan of the whole table (EXPLAIN QUERY
    PLAN without values). SQLite 3.40 re-plans once the values are bound and
    may then find the index, but that depends on the version and settings
    (``SQLITE_DBCONFIG_ENABLE_QPSG`` turns it off); the literal does not. Only
    constants of the code are accepted (a ``JobState``, an int, the empty
    string), never input, so the text needs no quoting.
    """

    def __init__(self, value: JobState | int | str) -> None:
        if isinstance(value, bool) or not (
                isinstance(value, int | JobState) or value == "" or value in ALL_STATE_VALUES):
            raise TypeError(f"not a literal of the job table's conditions: {value!r}")
        if isinstance(value, int):
            super().__init__(int(value), output_field=models.IntegerField())
        else:
            super().__init__(JobState(value).value if value else "",
                             output_field=models.CharField())

    def as_sql(self, compiler, connection):
        return (str(self.value) if isinstance(self.value, int) else f"'{self.value}'"), []


ALL_STATE_VALUES = frozenset(state.value for state in JobState)


def in_state(state: JobState | str) -> Q:
    """``state = '<state>'`` as a literal, for the queries served by a partial index."""
    return Q(state=Literal(JobState(state)))


class JobQuerySet(models.QuerySet):
    def due(self, now) -> JobQuerySet:
        """Delayed jobs whose time has come: the promoter's work list (index ``job_due``)."""
        return self.filter(in_state(JobState.DELAYED), run_at__lte=now)

    def unpublished(self, before) -> JobQuerySet:
        """Waiting jobs committed before ``before`` whose message was never sent."""
        return self.filter(in_state(JobState.WAITING), published_at__isnull=True,
                           enqueued_at__lt=before)

    def children_of(self, job_id: str) -> JobQuerySet:
        """The jobs ``job_id`` added (chain, link, flow children), by index ``job_children``."""
        return self.filter(~Q(parent_id=Literal("")), parent_id=job_id)

    def group_members(self, group_id: str) -> JobQuerySet:
        """The parts of a Celery group or chord header, by index ``job_group_members``."""
        return self.filter(~Q(group_id=Literal("")), group_id=group_id)

    def awaiting_retry(self, queue: QueueName | str) -> JobQuerySet:
        """Delayed jobs of ``queue`` that failed an attempt, by index ``job_retry_wait``."""
        return self.filter(in_state(JobState.DELAYED), attempts_made__gt=Literal(0),
                           queue=str(queue))

    def waiting(self, queue: QueueName | str) -> JobQuerySet:
        """The waiting jobs of ``queue``, by the waiting-only indexes."""
        return self.filter(in_state(JobState.WAITING), queue=str(queue))

    def active(self) -> JobQuerySet:
        """Active jobs of every declared queue (only those can have been claimed).

        The queue list lets the listing index (queue, state, …) find them: no
        index starts with ``state``, so without it the reconciler and every
        worker's orphan sweep would scan the whole table.
        """
        return self.filter(queue__in=[q.value for q in QueueName], state=JobState.ACTIVE)


class Job(models.Model):
    """One job, from enqueue to its end. Its id is the Celery task id.

    State changes are single UPDATEs by primary key guarded by the expected
    state (compare-and-set), so duplicate deliveries cannot run a job twice.
    """

    id = models.CharField(primary_key=True, max_length=255, help_text="The Celery task id.")
    queue = models.CharField(max_length=32, choices=[(q.value, q.value) for q in QueueName])
    name = models.CharField(max_length=200, help_text="Job name within its queue.")
    data = models.JSONField(default=dict, help_text="Keyword arguments of the processor.")
    priority = models.PositiveSmallIntegerField(
        default=JobPriority.NORMAL, choices=[(p.value, p.name) for p in JobPriority]
    )
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.WAITING)
    attempts_made = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    backoff = models.JSONField(default=dict)
    delay_ms = models.BigIntegerField(default=0, help_text="Delay requested at enqueue (ms).")
    run_at = models.DateTimeField(null=True, blank=True, help_text="When a delayed job falls due.")
    progress = models.JSONField(default=int)
    result = models.JSONField(null=True, blank=True)
    errors = models.JSONField(
        default=list, help_text="One entry per failed attempt: error, traceback, times."
    )
    worker = models.CharField(max_length=255, blank=True, default="")
    cancel_requested = models.BooleanField(default=False)
    cancel_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="An active job that ignores it is terminated after a grace period."
    )
    lost_count = models.PositiveSmallIntegerField(
        default=0, help_text="Times the worker running this job died under it."
    )
    created_at = models.DateTimeField()
    enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When the job last became waiting."
    )
    published_at = models.DateTimeField(
        null=True, blank=True, help_text="When its broker message was last sent (outbox)."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Celery canvas on record (tasks/worker/canvas.py): what runs after this job.
    parent_id = models.CharField(
        max_length=255, blank=True, default="", db_default="",
        help_text="The job whose completion (chain, link) or failure (link_error) added this one.")
    group_id = models.CharField(max_length=255, blank=True, default="", db_default="",
                                help_text="The Celery group or chord header it belongs to.")
    group_index = models.PositiveIntegerField(null=True, blank=True)
    canvas = models.JSONField(
        null=True, blank=True,
        help_text="Signatures to apply after it: the rest of its chain, link, link_error.")
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Celery's expires: not run after this; cancelled.")
    keep = models.JSONField(
        null=True, blank=True,
        help_text="Its own remove_on_complete / remove_on_fail (else the queue's preset).")
    # Per-job options (tasks/jobs/timeouts.py): carried by every publish of the job.
    timeout_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Its own hard time limit (ms); else its task's.")
    soft_timeout_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Its own soft time limit (ms); else its task's.")
    lifo = models.BooleanField(
        default=False, db_default=False,
        help_text="Taken before the other waiting jobs of its priority (Redis).")

    objects = JobQuerySet.as_manager()

    class Meta:
        permissions = JOB_PERMISSIONS  # checked per door (tasks/jobs/permissions.py)
        # Every run moves a job waiting -> active -> completed, and an index
        # keyed on ``state`` rewrites an entry at both steps. With five such
        # indexes a claim plus completion cost 360 µs of CPU on SQLite (137 µs
        # without any; 300,000 rows, development VM). So only the listing index
        # holds every row; the others are partial, holding just the rows their
        # queries read: a run deletes one entry from each waiting index and
        # adds one to the finished index (223 µs). Queries served by a
        # ``state`` partial index spell the state as a literal (``in_state``),
        # so that SQLite can choose the index from the statement text.
        indexes = [
            # Counts and keyset pages of every state; ages; the reconciler's
            # active jobs (by queue); retention of waiting and delayed jobs.
            models.Index(fields=["queue", "state", "created_at"], name="job_queue_state_created"),
            # The promoter's due query.
            models.Index(fields=["run_at"], name="job_due", condition=Q(state=JobState.DELAYED)),
            # Retention, metrics and charts of finished jobs (only they have a finished_at).
            models.Index(fields=["queue", "state", "finished_at"], name="job_finished",
                         condition=Q(finished_at__isnull=False)),
            # The outbox relay. Rows leave it when their message is sent, before they run.
            models.Index(fields=["enqueued_at"], name="job_unpublished",
                         condition=Q(state=JobState.WAITING, published_at__isnull=True)),
            # The lost-message reconciler: the longest-published waiting jobs of a queue.
            models.Index(fields=["queue", "published_at"], name="job_waiting_published",
                         condition=Q(state=JobState.WAITING)),
            # Position in the queue: higher priority, or same priority queued earlier.
            models.Index(fields=["queue", "priority", "enqueued_at"], name="job_waiting_ahead",
                         condition=Q(state=JobState.WAITING)),
            # Jobs that failed an attempt and wait for their retry (/metrics). ``state`` and
            # ``attempts_made`` are constant or bounded here, but as columns they make SQLite
            # (no statistics) prefer this index to job_queue_state_created (queue=, state=),
            # which would walk every delayed job of the queue.
            models.Index(fields=["queue", "state", "attempts_made"], name="job_retry_wait",
                         condition=Q(state=JobState.DELAYED, attempts_made__gt=0)),
            # A job's children on its page; a group's members, in order.
            models.Index(fields=["parent_id"], name="job_children", condition=~Q(parent_id="")),
            models.Index(fields=["group_id", "group_index"], name="job_group_members",
                         condition=~Q(group_id="")),
            # Finished jobs with their own retention (remove_on_complete / remove_on_fail).
            models.Index(fields=["queue", "name", "state", "finished_at"], name="job_own_keep",
                         condition=Q(keep__isnull=False, finished_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.queue}/{self.name} {self.id} ({self.state})"


class JobLog(models.Model):
    """A line a processor wrote with ``job.log()``, or an operator action."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="logs", db_constraint=False)
    created_at = models.DateTimeField(auto_now_add=True)
    message = models.TextField()

    class Meta:
        ordering = ["id"]


class Lease(models.Model):
    """A named lease so at most one promoter is active; its heartbeat shows liveness."""

    name = models.CharField(primary_key=True, max_length=64)
    holder = models.CharField(max_length=255)
    expires_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()


class WorkerHeartbeat(models.Model):
    """Written every few seconds by each worker's main process (``tasks.worker.bootstep``).

    Tells the dashboard and health check who consumes which queue, and the
    reconciler which workers are gone (their active jobs are re-queued).
    """

    hostname = models.CharField(primary_key=True, max_length=255)
    pid = models.PositiveIntegerField(default=0)
    queues = models.JSONField(default=list, help_text="Queues it consumes now (paused ones left out).")
    concurrency = models.PositiveIntegerField(default=0)
    active = models.PositiveIntegerField(default=0, help_text="Jobs running at the last beat.")
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField()
    fastpaths = models.JSONField(
        default=dict, help_text="Each fast path's state in this worker (tasks.fastpath)."
    )


class QueueControl(models.Model):
    """Persistent pause flag per queue: every worker host honours it, across restarts."""

    queue = models.CharField(primary_key=True, max_length=32)
    paused = models.BooleanField(default=False)
    held_until = models.DateTimeField(
        null=True, blank=True,
        help_text="A processor was told to slow down (HTTP 429): the queue waits until then.")
    changed_by = models.CharField(max_length=255, blank=True, default="")
    changed_at = models.DateTimeField(null=True, blank=True)


class RejectedMessage(models.Model):
    """A broker message on our queues that was not executed: undecodable, foreign or unknown."""

    queue = models.CharField(max_length=64, blank=True, default="")
    reason = models.CharField(max_length=64)
    detail = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)


class EmailDelivery(models.Model):
    """Idempotency record: one row per job whose email went out, so a redelivery sends nothing."""

    job_id = models.CharField(max_length=255, unique=True)
    to = models.CharField(max_length=254)
    subject = models.CharField(max_length=255)
    sent_at = models.DateTimeField(null=True, blank=True)


class Notification(models.Model):
    """An in-app notification for a user; one per job (``job_id`` unique) so redelivery adds none."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True)
    job_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    kind = models.CharField(max_length=64, default="notice")
    message = models.TextField()
    webhook_status = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read = models.BooleanField(default=False)


class Dataset(models.Model):
    """An uploaded CSV processed by ``process-data``; the job carries only its id."""

    class Status(models.TextChoices):
        UPLOADED = "uploaded"
        PROCESSING = "processing"
        PROCESSED = "processed"
        CANCELLED = "cancelled"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True)
    name = models.CharField(max_length=255)
    content = models.TextField(help_text="CSV text with a header row.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADED)
    rows_processed = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class QueueStats(models.Model):
    """Figures per queue over a window, computed from job records by ``hourly-stats``."""

    queue = models.CharField(max_length=32)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    failure_rate = models.FloatField(default=0.0)
    throughput_per_min = models.FloatField(default=0.0)
    avg_duration_ms = models.FloatField(null=True, blank=True)
    p95_duration_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "queue stats"
        constraints = [
            models.UniqueConstraint(fields=["queue", "window_start", "window_end"], name="stats_window")
        ]


class JobGroup(models.Model):
    """A Celery group or chord on record: its members, and for a chord the callback and a counter.

    Each chord part's completion decrements ``remaining`` in the transaction
    that records it; the one that reaches zero applies the callback, once.
    """

    id = models.CharField(primary_key=True, max_length=255, help_text="The Celery group id.")
    members = models.JSONField(default=list, help_text="Job ids, in group order.")
    callback = models.JSONField(null=True, blank=True, help_text="A chord's body signature.")
    remaining = models.IntegerField(null=True, blank=True,
                                    help_text="Chord parts still to complete.")
    failed = models.BooleanField(default=False, help_text="A chord part failed: no callback.")
    parent = models.CharField(
        max_length=255, blank=True, default="",
        help_text="A flow's parent job: it starts when the members have completed.")
    created_at = models.DateTimeField(auto_now_add=True)


#: Upper bounds (seconds) of the duration histogram buckets of ``JobCounter``; one more
#: bucket above the last. Fixed, so summaries of any minutes merge by adding them.
DURATION_BOUNDS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0)
HISTOGRAM_COLUMNS = tuple(f"h{i:02d}" for i in range(len(DURATION_BOUNDS_S) + 1))


class JobCounter(models.Model):
    """Figures of finished jobs per queue, job name and minute, which retention cannot touch.

    Folded from job rows as they finish (``tasks.upkeep.counters``), rolled up
    to hours after a day and into an all-time ``total`` row after
    ``JOB_COUNTERS_KEEP_DAYS``; every figure the service shows reads them.
    """

    class Span(models.TextChoices):
        MINUTE = "minute"
        HOUR = "hour"
        TOTAL = "total"

    queue = models.CharField(max_length=32)
    name = models.CharField(max_length=200)
    span = models.CharField(max_length=8, choices=Span.choices)
    start = models.DateTimeField(help_text="Start of the minute or hour (UTC).")
    completed = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    cancelled = models.BigIntegerField(default=0)
    retried = models.BigIntegerField(default=0, help_text="Failed attempts before the outcome.")
    lost = models.BigIntegerField(default=0, help_text="Runs whose worker died under them.")
    runs = models.BigIntegerField(default=0, help_text="Finished runs with a duration.")
    duration_sum = models.FloatField(default=0.0, help_text="Seconds, over ``runs``.")
    duration_max = models.FloatField(default=0.0)
    locals().update({column: models.BigIntegerField(default=0) for column in HISTOGRAM_COLUMNS})

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue", "name", "span", "start"],
                                               name="job_counter_key")]
        indexes = [models.Index(fields=["span", "start"], name="job_counter_span_start")]


class CounterWatermark(models.Model):
    """Job rows finished before ``folded_until`` are in ``JobCounter``; later ones are read live."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    folded_until = models.DateTimeField()


class RateLimit(models.Model):
    """A global rate limit set at run time (dashboard); overrides the queue config's.

    ``name`` empty: the whole queue. ``rate`` empty: no limit, whatever the config says.
    """

    queue = models.CharField(max_length=32)
    name = models.CharField(max_length=200, blank=True, default="")
    rate = models.CharField(max_length=32, blank=True, default="")
    changed_by = models.CharField(max_length=255, blank=True, default="")
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue", "name"], name="rate_limit_key")]


class RateWindow(models.Model):
    """Jobs started in one window of one limit: the promoter takes its slots here."""

    key = models.CharField(max_length=255)
    start = models.DateTimeField()
    used = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "start"], name="rate_window_key")]


class RepeatLimit(models.Model):
    """BullMQ's repeat ``limit``: the schedule ends (beat disables it) after this many firings."""

    schedule = models.OneToOneField("django_celery_beat.PeriodicTask", on_delete=models.CASCADE,
                                    primary_key=True, related_name="repeat_limit")
    limit = models.PositiveIntegerField(help_text="Firings after which the schedule ends.")


class Report(models.Model):
    """A stored weekly report."""

    kind = models.CharField(max_length=32, default="weekly")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    body = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)


class JobWindow(models.Model):
    """A ``unique_for`` or ``debounce`` window (``tasks.jobs.windows``): the job it holds, until when.

    Apart from the job rows, so retention deleting a job does not end its
    window; expired windows are deleted by the promoter's retention pass.
    """

    class Kind(models.TextChoices):
        UNIQUE = "unique"
        DEBOUNCE = "debounce"

    digest = models.CharField(primary_key=True, max_length=64,
                              help_text="SHA-256 of kind, queue, job name and key (or data).")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    queue = models.CharField(max_length=32)
    name = models.CharField(max_length=200)
    key = models.CharField(max_length=255, blank=True, default="",
                           help_text="The caller's unique_key; empty for the default key.")
    job_id = models.CharField(max_length=255, help_text="The job an add within it returns.")
    opened_at = models.DateTimeField(help_text="When the add that opened it ran.")
    expires_at = models.DateTimeField(help_text="Adds after this open a new window.")

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="job_window_expiry"),
                   models.Index(fields=["job_id"], name="job_window_job")]

    def __str__(self) -> str:
        return f"{self.kind} {self.queue}/{self.name} -> {self.job_id} until {self.expires_at}"
