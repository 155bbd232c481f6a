import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Membership, User, Workspace
from search.mcp import server
from search.mcp.tools import Caller


class Command(BaseCommand):
    help = (
        "Serve the MCP server over stdio for one user, for an agent on the machine that runs OpenSync "
        "(no API key: whoever can run this command can read the database anyway). Read-only unless "
        "--allow-writes. Over the network, use /mcp with an API key instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="The user's email.")
        parser.add_argument(
            "--workspace", help="A workspace slug the user is a member of (default: their personal workspace)."
        )
        parser.add_argument("--allow-writes", action="store_true", help="Allow the tools that write (bookmark).")
        parser.add_argument(
            "--base-url",
            default=settings.OPENSYNC_PUBLIC_URL or "http://127.0.0.1:8000",
            help="The web app's URL, for the links in results (default: OPENSYNC_PUBLIC_URL, else "
            "http://127.0.0.1:8000).",
        )

    def handle(self, *args, user, workspace, allow_writes, base_url, **options):
        person = User.objects.filter(email__iexact=user.strip(), is_active=True).first()
        if person is None:
            raise CommandError(f"No active user with the email {user!r}")
        if workspace:
            target = Workspace.objects.filter(slug=workspace).first()
            if target is None or not Membership.objects.filter(user=person, workspace=target).exists():
                raise CommandError(f"{person.email} is not a member of a workspace {workspace!r}")
        else:
            target = Workspace.objects.filter(created_by=person, is_personal=True).first()
            if target is None:
                raise CommandError(f"{person.email} has no personal workspace; pass --workspace")
        server.stdio_caller = Caller(
            user=person, workspace=target, can_write=allow_writes, base_url=base_url.rstrip("/")
        )
        # stdout carries the protocol from here on: anything else goes to stderr
        self.stderr.write(f"OpenSync MCP server (stdio) for {person.email} in {target.slug}", ending="\n")
        sys.stderr.flush()
        server.mcp.run("stdio")
