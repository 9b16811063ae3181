"""One namespace; each view module declares the routes of the views it holds.

Fixed paths such as releases/new/ come before releases/<version>/, which would take them.
"""

from . import (
    imports,
    incident_views,
    language,
    manage_views,
    plan_views,
    rollout_views,
    streams,
    views,
    window_views,
)

app_name = "releases"

urlpatterns = [
    *manage_views.routes,
    *plan_views.routes,
    *imports.routes,
    *language.routes,
    *incident_views.routes,
    *rollout_views.routes,
    *views.routes,
    *streams.routes,
    *window_views.routes,
]
