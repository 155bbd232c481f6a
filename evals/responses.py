"""An export file as a download, the same from the web UI and the API: the file itself with the
counts and the dataset version in headers."""

from django.http import FileResponse

from .formats import FORMATS

EXPORT_HEADERS = ("X-Export-Sessions", "X-Export-TestCases", "X-Export-Skipped", "X-Export-Content-Hash")


def export_response(
    file, *, content_type: str, filename: str, sessions: int, records: int, skipped: int, content_hash: str
) -> FileResponse:
    response = FileResponse(file, content_type=content_type, as_attachment=True, filename=filename)
    for header, value in zip(EXPORT_HEADERS, (sessions, records, skipped, content_hash), strict=True):
        response[header] = str(value)
    return response


def job_file_response(job) -> FileResponse:
    """A finished job's file; FileNotFoundError when it is gone from storage."""
    fmt = FORMATS.get(job.format)
    return export_response(
        job.file.open("rb"),
        content_type=fmt.content_type if fmt else "application/octet-stream",
        filename=job.filename,
        sessions=job.processed,
        records=job.records,
        skipped=job.skipped,
        content_hash=job.content_hash,
    )
