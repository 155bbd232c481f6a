"""An export file as a download, the same from the web UI and the API: the file itself with the
counts and the dataset version in headers; from S3, a redirect to a short-lived signed URL of it."""

from django.core.files.storage import FileSystemStorage
from django.http import FileResponse, HttpResponse, HttpResponseRedirect
from django.utils.http import content_disposition_header

from .formats import FORMATS

EXPORT_HEADERS = ("X-Export-Sessions", "X-Export-TestCases", "X-Export-Skipped", "X-Export-Content-Hash")


def _with_export_headers(response, *, sessions: int, records: int, skipped: int, content_hash: str):
    for header, value in zip(EXPORT_HEADERS, (sessions, records, skipped, content_hash), strict=True):
        response[header] = str(value)
    return response


def export_response(
    file, *, content_type: str, filename: str, sessions: int, records: int, skipped: int, content_hash: str
) -> FileResponse:
    response = FileResponse(file, content_type=content_type, as_attachment=True, filename=filename)
    return _with_export_headers(
        response, sessions=sessions, records=records, skipped=skipped, content_hash=content_hash
    )


def _signs_urls(storage) -> bool:
    """Whether the storage hands out short-lived signed links to its private objects (S3). The S3
    backend is imported only when the storage isn't local disk: boto3 takes most of a second to
    import, for nothing in a deployment without S3."""
    if isinstance(storage, FileSystemStorage):
        return False
    from storages.backends.s3 import S3Storage

    return isinstance(storage, S3Storage) and storage.querystring_auth


def job_file_response(job) -> HttpResponse:
    """A finished job's file; FileNotFoundError when it is gone from storage. The caller has
    checked that the user or key may see the job.

    From S3: a redirect to a URL signed for OPENSYNC_S3_SIGNED_URL_SECONDS, which has S3 answer
    with our file name and type, so the bytes don't pass through a web process (the export
    headers stay on the redirect). From local disk: the file, streamed."""
    fmt = FORMATS.get(job.format)
    content_type = fmt.content_type if fmt else "application/octet-stream"
    storage = job.file.storage
    response: HttpResponse
    if _signs_urls(storage):
        if not storage.exists(job.file.name):
            raise FileNotFoundError(job.file.name)
        parameters = {
            "ResponseContentDisposition": content_disposition_header(True, job.filename),
            "ResponseContentType": content_type,
        }
        response = HttpResponseRedirect(storage.url(job.file.name, parameters=parameters))
    else:
        response = FileResponse(
            job.file.open("rb"), content_type=content_type, as_attachment=True, filename=job.filename
        )
    return _with_export_headers(
        response, sessions=job.processed, records=job.records, skipped=job.skipped, content_hash=job.content_hash
    )
