import logging

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import ExportJob

logger = logging.getLogger(__name__)


@receiver(post_delete, sender=ExportJob)
def export_file_delete(sender, instance: ExportJob, **kwargs) -> None:
    """An export's file goes with its row, however the row is deleted (one export, a user's data, a
    workspace): Django runs this for every row it cascades to.

    Once the deletion commits: a rollback then keeps the file its row still points at, and a storage
    hiccup (an S3 request) can't fail a whole account's deletion. One that fails is logged; the
    object is left behind with no row (the bucket's lifecycle rules can expire such leftovers)."""
    if not instance.file:
        return
    storage, name = instance.file.storage, instance.file.name

    def delete() -> None:
        try:
            storage.delete(name)
        except Exception:
            logger.exception("Could not delete the file %s of a deleted export", name)

    transaction.on_commit(delete)
