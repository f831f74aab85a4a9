from django.urls import path

from tasks.operate.dashboard import monitoring, operations, stream, views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("health", monitoring.health, name="health"),
    path("counts.json", views.counts_json, name="counts"),
    path("chart.json", views.chart_json, name="chart"),
    path("events", stream.events, name="events"),
    path("jobs/<path:job_id>/status.json", views.job_status, name="job-status"),
    path("jobs/<path:job_id>", operations.job_page, name="job"),
    path("<str:queue>/pause", operations.pause, name="pause"),
    path("<str:queue>/resume", operations.resume, name="resume"),
    path("<str:queue>/rate-limit", operations.rate_limit, name="rate-limit"),
    path("<str:queue>/retry-failed", operations.retry_failed, name="retry-failed"),
    path("<str:queue>/clean", operations.clean, name="clean"),
    path("<str:queue>/", views.queue_jobs, name="queue"),
    path("<str:queue>/<str:state>/", views.queue_jobs, name="queue-state"),
]
