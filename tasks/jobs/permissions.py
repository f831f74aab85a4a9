"""Who may do what: the Job permissions that every door checks (docs/security.md).

Staff status only opens Django admin; each page, API call and action asks for
one of these. ``view_job`` is Django's own; the others are custom permissions
on ``Job`` (``Job.Meta.permissions``).
"""

VIEW = "tasks.view_job"
ENQUEUE = "tasks.enqueue_job"
OPERATE = "tasks.operate_job"
REMOVE = "tasks.remove_job"

#: ``Job.Meta.permissions``: (codename, name).
CUSTOM = (
    ("enqueue_job", "Can enqueue jobs through the HTTP API"),
    ("operate_job", "Can retry, promote and cancel jobs and pause or resume queues"),
    ("remove_job", "Can remove jobs and clean queues"),
)

#: The group created by migration 0008 for people who run the queues day to day.
#: Enqueueing through the API is left out: it runs jobs (emails, webhooks) and is
#: granted to API clients one by one.
OPERATORS_GROUP = "queue operators"
OPERATORS_PERMISSIONS = ("view_job", "operate_job", "remove_job")
