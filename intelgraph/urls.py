"""Top-level URL map: admin, auth, the queue dashboard, metrics, the job API and signup."""

from django.contrib import admin
from django.urls import include, path

from tasks.operate.dashboard import monitoring

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("queues/", include("tasks.operate.dashboard.urls")),
    path("metrics", monitoring.metrics, name="metrics"),
    path("", include("tasks.urls")),
]
