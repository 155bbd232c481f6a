from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import ApiKeyScope, Membership, Role, User, Workspace
from accounts.services import api_key_create, workspace_ensure_personal


class Command(BaseCommand):
    help = (
        "Create an API key and print only the key. Creates the user (with a personal workspace) "
        "if missing. For scripted installs and CI."
    )

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument("--workspace", help="Workspace slug (default: the user's personal workspace)")
        parser.add_argument("--scope", choices=ApiKeyScope.values, default=ApiKeyScope.SYNC)
        parser.add_argument("--name", default="cli")

    @transaction.atomic
    def handle(self, *args, email, workspace, scope, name, **options):
        email = User.objects.normalize_email(email).strip().lower()
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            try:
                User(email=email).full_clean(exclude=["password"])
            except ValidationError as exc:
                raise CommandError(f"Invalid email: {'; '.join(exc.messages)}") from None
            user = User.objects.create_user(email=email)  # unusable password: log in via reset
        personal = workspace_ensure_personal(user=user)
        if workspace:
            target = Workspace.objects.filter(slug=workspace).first()
            if target is None:
                raise CommandError(f"No workspace with slug {workspace!r}")
            # Provisioning by the operator: add the user to the workspace if they aren't in it.
            Membership.objects.get_or_create(user=user, workspace=target, defaults={"role": Role.MEMBER})
        else:
            target = personal
        try:
            _, raw = api_key_create(user=user, workspace=target, name=name, scope=scope)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(raw)
