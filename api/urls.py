"""The API's routes, under /api/ (deploycheck/urls.py); reversed as "api:NAME"."""

from django.urls import path

from . import releases

app_name = "api"

urlpatterns = [
    path("releases/<str:version>/go-no-go", releases.go_no_go, name="go-no-go"),
    path("releases/<str:version>/evidence", releases.evidence, name="evidence"),
]
