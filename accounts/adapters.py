from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings

from .services import workspace_ensure_personal


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request):
        return settings.OPENSYNC_ALLOW_SIGNUP

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            workspace_ensure_personal(user=user)
        return user


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin):
        return settings.OPENSYNC_ALLOW_SIGNUP

    def save_user(self, request, sociallogin, form=None):
        user = super().save_user(request, sociallogin, form=form)
        workspace_ensure_personal(user=user)
        return user
