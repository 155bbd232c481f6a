from .selectors import workspaces_for_user
from .services import current_workspace


def workspaces(request):
    """The workspace switcher's data, for every logged-in page."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "current_workspace": current_workspace(request),
        "user_workspaces": list(workspaces_for_user(user)),
    }
