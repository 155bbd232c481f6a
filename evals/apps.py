from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "evals"
    verbose_name = "Evals"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers; models must be loaded first)
