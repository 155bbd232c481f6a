import django.db.models.deletion
import pgvector.django
import pgvector.django.indexes
import pgvector.django.vector
from django.conf import settings
from django.db import migrations, models


# The vector columns take OPENSYNC_EMBEDDINGS_DIMENSIONS when first created, like the model does
# (search/models.py), so `makemigrations` never sees a change; `manage.py embeddings --rebuild`
# resizes them after the setting changes.


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0003_deletion_job_and_usage_index'),
        ('sessions_app', '0003_project_filter_index'),
    ]

    operations = [
        # pgvector's `vector` type and operators (CREATE EXTENSION IF NOT EXISTS).
        pgvector.django.VectorExtension(),
        migrations.CreateModel(
            name='MessageChunkEmbedding',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('chunk_index', models.PositiveIntegerField()),
                ('text_hash', models.CharField(max_length=64)),
                ('embedding', pgvector.django.vector.VectorField(dimensions=settings.OPENSYNC_EMBEDDINGS_DIMENSIONS)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('message', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='chunk_embeddings', to='sessions_app.message')),
                ('session', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='chunk_embeddings', to='sessions_app.session')),
                ('workspace', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='chunk_embeddings', to='accounts.workspace')),
            ],
            options={
                'indexes': [pgvector.django.indexes.HnswIndex(ef_construction=64, fields=['embedding'], m=16, name='chunk_embedding_hnsw', opclasses=['vector_cosine_ops']), models.Index(fields=['workspace'], name='chunk_embedding_ws_idx'), models.Index(fields=['session'], name='chunk_embedding_session_idx')],
                'constraints': [models.UniqueConstraint(fields=('message', 'chunk_index'), name='chunk_embedding_message_chunk_uniq')],
            },
        ),
        migrations.CreateModel(
            name='SessionEmbedding',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('text_hash', models.CharField(max_length=64)),
                ('embedding', pgvector.django.vector.VectorField(dimensions=settings.OPENSYNC_EMBEDDINGS_DIMENSIONS)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('session', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='embedding', to='sessions_app.session')),
                ('workspace', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='session_embeddings', to='accounts.workspace')),
            ],
            options={
                'indexes': [pgvector.django.indexes.HnswIndex(ef_construction=64, fields=['embedding'], m=16, name='session_embedding_hnsw', opclasses=['vector_cosine_ops']), models.Index(fields=['workspace'], name='session_embedding_ws_idx')],
            },
        ),
    ]
