from tortoise import migrations
from tortoise.migrations import operations as ops
from models.enums import ExportStatus, PrivacyRequestKind
from models.fields import EncryptedField
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

# Access and portability exports (issue 12 item 3): the export row and its JSON in parts, each
# part sealed under the subject's data key and bound to its export and index by its key.

class Migration(migrations.Migration):
    dependencies = [('ocis', '0024_restriction_and_usage')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Export',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('request', fields.ForeignKeyField('ocis.PrivacyRequest', source_field='request_id', db_constraint=True, to_field='id', related_name='exports', on_delete=OnDelete.CASCADE)),
                ('subject', fields.ForeignKeyField('ocis.User', source_field='subject_id', db_constraint=True, to_field='id', related_name='exports', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='ACCESS: access\nRECTIFICATION: rectification\nERASURE: erasure\nRESTRICTION: restriction\nPORTABILITY: portability\nOBJECTION: objection', enum_type=PrivacyRequestKind, max_length=20)),
                ('status', fields.CharEnumField(default=ExportStatus.BUILDING, description='BUILDING: building\nREADY: ready\nFAILED: failed', enum_type=ExportStatus, max_length=10)),
                ('token_hash', fields.CharField(null=True, unique=True, max_length=64)),
                ('part_count', fields.IntField(default=0)),
                ('size_bytes', fields.BigIntField(default=0)),
                ('downloads_left', fields.SmallIntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('ready_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'exports', 'app': 'ocis', 'pk_attr': 'id', 'table_description': "One export of a subject's data (access or portability), built by the privacy.export job."},
            bases=['Entity'],
        ),
        ops.CreateModel(
            name='ExportPart',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('export', fields.ForeignKeyField('ocis.Export', source_field='export_id', db_constraint=True, to_field='id', related_name='parts', on_delete=OnDelete.CASCADE)),
                ('subject', fields.ForeignKeyField('ocis.User', source_field='subject_id', db_constraint=True, to_field='id', related_name='export_parts', on_delete=OnDelete.CASCADE)),
                ('index', fields.IntField()),
                ('data', EncryptedField()),
            ],
            options={'table': 'export_parts', 'app': 'ocis', 'unique_together': (('export_id', 'index'),), 'pk_attr': 'id', 'table_description': "One chunk of an export's JSON, sealed under its subject's data key."},
            bases=['Entity'],
        ),
    ]
