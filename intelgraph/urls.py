"""Top-level URL map: admin, auth, the queue dashboard, metrics, the job API and signup."""

from django.contrib import admin
from django.urls import include, path

from tasks import views
from tasks.operate.dashboard import monitoring

urlpatterns = [
    path("admin/", admin.site.urls),
    # Before Django's own: reset links point at SITE_URL, not at the request's Host.
    path("accounts/password_reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("queues/", include("tasks.operate.dashboard.urls")),
    path("metrics", monitoring.metrics, name="metrics"),
    path("", include("tasks.urls")),
]
