from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import User
from .services import workspace_ensure_personal


@receiver(post_save, sender=User)
def user_personal_workspace(sender, instance: User, created: bool, raw: bool = False, **kwargs) -> None:
    """Every user has a personal workspace from the start, however the account is made (sign-up,
    social login, the admin, createsuperuser, the manager); loaded fixtures bring their own."""
    if created and not raw:
        workspace_ensure_personal(user=instance)
