from tortoise import migrations
from tortoise.migrations import operations as ops
from models.documents import DocumentSource
from uuid import uuid4
from tortoise import fields

# The document registry (issue 14 item 5, built on by issue 16's compiled plans): persisted and
# trusted documents by SHA-256, who registered them (a manifest, or automatically) and when.


class Migration(migrations.Migration):
    dependencies = [('ocis', '0019_privacy_request_workflow')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PersistedDocument',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('sha256', fields.CharField(unique=True, max_length=64)),
                ('text', fields.TextField(unique=False)),
                ('source', fields.CharEnumField(description='MANIFEST: manifest\nAUTOMATIC: automatic', enum_type=DocumentSource, max_length=10)),
                ('operation_name', fields.CharField(null=True, max_length=200)),
                ('registered_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'persisted_documents', 'app': 'ocis', 'pk_attr': 'id', 'table_description': 'One GraphQL document, keyed by the SHA-256 of its exact text (as Apollo clients hash it).'},
            bases=['Entity'],
        ),
    ]
