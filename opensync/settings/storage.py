"""Where files (eval exports) are kept, from the environment: local disk under MEDIA_ROOT, which
the web server and the workers must share, or an S3-compatible bucket that every host reaches.
Downloads from S3 are redirects to short-lived signed URLs (evals.responses), so the bucket stays
private."""

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .env import env_choice, env_int, env_str

MAX_SIGNED_URL_SECONDS = 7 * 24 * 3600  # S3's limit for a SigV4 signed URL


def default_storage_from_env() -> dict[str, Any]:
    """STORAGES["default"] for OPENSYNC_STORAGE (`local` or `s3`) and the OPENSYNC_S3_* variables."""
    if env_choice("OPENSYNC_STORAGE", "local", {"local", "s3"}) == "local":
        return {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    seconds = env_int("OPENSYNC_S3_SIGNED_URL_SECONDS", 300, minimum=1)
    if seconds > MAX_SIGNED_URL_SECONDS:
        raise ImproperlyConfigured(f"OPENSYNC_S3_SIGNED_URL_SECONDS must be at most {MAX_SIGNED_URL_SECONDS} (7 days).")
    options: dict[str, Any] = {
        "bucket_name": env_str("OPENSYNC_S3_BUCKET"),
        "location": env_str("OPENSYNC_S3_PREFIX").strip("/"),
        "querystring_auth": True,
        "querystring_expire": seconds,
        "signature_version": "s3v4",  # newer AWS regions refuse SigV2 links
        "addressing_style": env_choice("OPENSYNC_S3_ADDRESSING_STYLE", "auto", {"auto", "path", "virtual"}),
        "default_acl": None,  # objects get the bucket's own (private) access, never public-read
        "file_overwrite": False,  # a name already taken gets a suffix, never another file's object
    }
    if not options["bucket_name"]:
        raise ImproperlyConfigured("OPENSYNC_STORAGE=s3 needs OPENSYNC_S3_BUCKET.")
    for option, name in (("endpoint_url", "OPENSYNC_S3_ENDPOINT_URL"), ("region_name", "OPENSYNC_S3_REGION")):
        if value := env_str(name):
            options[option] = value
    # Without keys, boto3 finds its own: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws, the
    # instance or task role.
    key_id, secret = env_str("OPENSYNC_S3_ACCESS_KEY_ID"), env_str("OPENSYNC_S3_SECRET_ACCESS_KEY")
    if bool(key_id) != bool(secret):
        raise ImproperlyConfigured("Set both OPENSYNC_S3_ACCESS_KEY_ID and OPENSYNC_S3_SECRET_ACCESS_KEY, or neither.")
    if key_id:
        options |= {"access_key": key_id, "secret_key": secret}
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}
