from django.apps import AppConfig, apps


class TokenLifecycleConfig(AppConfig):
    name = "token_lifecycle"
    verbose_name = "Token lifecycle"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing checks registers the system checks.
        from . import checks, receivers  # noqa: F401

        receivers.connect()
        if apps.is_installed("drf_spectacular"):  # the "openapi" extra
            from . import openapi  # noqa: F401  (registers the schema extensions)
