from django.urls import path

from tasks import views

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("api/jobs", views.create_job, name="api-create-job"),
    path("api/jobs/<path:job_id>", views.job_detail, name="api-job-detail"),
]
