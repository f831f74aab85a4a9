from django.urls import path
from django.views.generic import RedirectView

from tasks import views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboard:overview"), name="home"),
    path("signup/", views.signup, name="signup"),
    path("api/jobs", views.create_job, name="api-create-job"),
    # Before the job's own URL: <path:job_id> would take "<id>/priority" too.
    path("api/jobs/<str:job_id>/priority", views.change_priority, name="api-job-priority"),
    path("api/jobs/<path:job_id>", views.job_detail, name="api-job-detail"),
]
