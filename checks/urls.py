"""One namespace; each view module declares the routes of the views it holds."""

from .api import routes as api_routes
from .manage_views import routes as manage_routes
from .views import routes as view_routes

app_name = "checks"

urlpatterns = [*view_routes, *api_routes, *manage_routes]
