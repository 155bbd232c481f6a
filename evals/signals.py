from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import ExportJob


@receiver(post_delete, sender=ExportJob)
def export_file_delete(sender, instance: ExportJob, **kwargs) -> None:
    """An export's file goes with its row, however the row is deleted (one export, a user's data, a
    workspace): Django runs this for every row it cascades to."""
    if instance.file:
        instance.file.delete(save=False)
