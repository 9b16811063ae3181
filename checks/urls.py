"""One namespace; each view module declares the routes of the views it holds."""

from .manage_views import routes as manage_routes
from .token_views import routes as token_routes
from .views import routes as view_routes

app_name = "checks"

urlpatterns = [*view_routes, *token_routes, *manage_routes]
