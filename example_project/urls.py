from django.apps import apps
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path

from example_project.spa.views import spa_config, spa_file
from example_project.views import WhoAmIView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("auth/", include("token_lifecycle.urls")),
    # RFC 8414 discovery from the host name: /.well-known/oauth-authorization-server/auth
    path("", include("token_lifecycle.well_known_urls")),
    path("api/whoami/", WhoAmIView.as_view(), name="whoami"),
    # Django's own login, where the authorization endpoint sends visitors (LOGIN_URL).
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The browser-mode example page (example_project/spa/, docs/browser-mode.md).
    path("spa/", spa_file, name="spa"),
    path("spa/config.json", spa_config, name="spa-config"),
    path("spa/<str:name>", spa_file, name="spa-file"),
]
# With DEBUG only (make demo): the admin's CSS, served behind the middleware, which
# checks the Host first (make demo runs `runserver --nostatic`).
urlpatterns += staticfiles_urlpatterns()

if apps.is_installed("drf_spectacular"):  # the "openapi" extra, see settings.py
    from drf_spectacular.extensions import OpenApiViewExtension
    from drf_spectacular.utils import extend_schema, inline_serializer
    from drf_spectacular.views import SpectacularAPIView
    from rest_framework import serializers

    # Importing token_lifecycle.openapi registers the app's schema extensions.
    from token_lifecycle.openapi import BEARER_FAILURE_HEADERS, BEARER_FAILURES

    class WhoAmISchema(OpenApiViewExtension):
        target_class = WhoAmIView

        def view_replacement(self):
            fields = ("username", "client_id", "pair_id")
            who = inline_serializer("WhoAmI", {name: serializers.CharField() for name in fields})

            @extend_schema(
                summary="Who the bearer token says you are",
                parameters=BEARER_FAILURE_HEADERS,
                responses={200: who, **BEARER_FAILURES},
            )
            class Documented(self.target):
                pass

            return Documented

    urlpatterns.append(path("api/schema/", SpectacularAPIView.as_view(), name="schema"))
