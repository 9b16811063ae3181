"""The API's routes, under /api/ (deploycheck/urls.py); reversed as "api:NAME"."""

from django.urls import path

from . import day, releases

app_name = "api"

urlpatterns = [
    path("releases/<str:version>/go-no-go", releases.go_no_go, name="go-no-go"),
    path("releases/<str:version>/evidence", releases.evidence, name="evidence"),
    path("releases/<str:version>/deploy", day.deploy, name="deploy"),
    path("releases/<str:version>/rollback", day.rollback, name="rollback"),
    path(
        "releases/<str:version>/rollback/steps/<str:number>",
        day.rollback_step,
        name="rollback-step",
    ),
    path("releases/<str:version>/rollback/<str:move>", day.rollback_move, name="rollback-move"),
    path("releases/<str:version>/updates", day.updates, name="updates"),
    path("releases/<str:version>/window", day.window, name="window"),
    path("releases/<str:version>/timeline", day.timeline, name="timeline"),
]
