from rest_framework import authentication, exceptions, permissions

from accounts.models import ApiKey
from accounts.selectors import api_key_for_raw
from accounts.services import touch_api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer osk_...` -> (user, ApiKey). Error texts match the upstream server."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            raise exceptions.AuthenticationFailed("Missing Authorization header")
        if not header.startswith("Bearer osk_"):
            raise exceptions.AuthenticationFailed("Invalid API key format")
        api_key = api_key_for_raw(header[len("Bearer ") :].strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid API key")
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("API key has been revoked")
        touch_api_key(api_key)
        # The request log middleware reads this from the Django request.
        request._request.opensync_api_key = api_key
        return api_key.user, api_key

    def authenticate_header(self, request):
        return 'Bearer realm="opensync"'


class HasApiKey(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.auth, ApiKey)


class CanSync(permissions.BasePermission):
    message = "This API key is read-only; create a key with the sync scope to write."

    def has_permission(self, request, view):
        return isinstance(request.auth, ApiKey) and request.auth.can_write
