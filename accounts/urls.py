from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("settings/", views.profile, name="settings"),
    path("settings/usage/", views.usage, name="usage"),
    path("settings/agents/", views.agents, name="agents"),
    path("settings/data/", views.data, name="data"),
    path("settings/data/delete-data/", views.delete_data, name="delete-data"),
    path("settings/data/delete-account/", views.delete_account, name="delete-account"),
    path("settings/data/jobs/<str:token>/", views.deletion_progress, name="deletion-progress"),
    path("settings/api-keys/", views.api_keys, name="api-keys"),
    path("settings/api-keys/<int:key_id>/revoke/", views.api_key_revoke, name="api-key-revoke"),
    path("workspaces/", views.workspaces, name="workspaces"),
    path("workspaces/switch/", views.workspace_switch, name="workspace-switch"),
    path("workspaces/<slug:slug>/", views.workspace_detail, name="workspace"),
    path("workspaces/<slug:slug>/retention/", views.workspace_retention, name="workspace-retention"),
    path("workspaces/<slug:slug>/invite/", views.workspace_invite, name="workspace-invite"),
    path("workspaces/<slug:slug>/members/<int:member_id>/role/", views.member_role, name="member-role"),
    path("workspaces/<slug:slug>/members/<int:member_id>/remove/", views.member_remove, name="member-remove"),
    path(
        "workspaces/<slug:slug>/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation-revoke",
    ),
    path("invites/<str:token>/", views.invitation_accept, name="invitation"),
]
