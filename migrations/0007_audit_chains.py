from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

from models.migration_ops import AddFieldFillingRows
from tortoise.indexes import Index

# The audit trail becomes one keyed chain per writer (privacy/audit.py). The rows already
# there stay as they are: a column default fills them in (no UPDATE, which the append-only
# triggers refuse and which would rewrite the trail), so they form the "legacy" chain of
# SHA-256 links in seq order, verifiable as before. The first start after this migration
# re-anchors that chain with a keyed checkpoint of its head, outside the database.


class Migration(migrations.Migration):
    dependencies = [('ocis', '0006_encrypted_client_details')]

    initial = False

    operations = [
        AddFieldFillingRows(
            model_name='AuditEvent',
            name='chain',
            field=fields.CharField(default='legacy', max_length=40),
            table='audit_events',
            column_sql=""""chain" VARCHAR(40) NOT NULL DEFAULT 'legacy'""",
        ),
        AddFieldFillingRows(
            model_name='AuditEvent',
            name='key_id',
            field=fields.CharField(default='sha256', max_length=16),
            table='audit_events',
            column_sql=""""key_id" VARCHAR(16) NOT NULL DEFAULT 'sha256'""",
        ),
        AddFieldFillingRows(
            model_name='AuditEvent',
            name='position',
            field=fields.BigIntField(default=0),
            table='audit_events',
            column_sql='"position" BIGINT NOT NULL DEFAULT 0',
        ),
        ops.AddIndex(
            model_name='AuditEvent',
            index=Index(fields=['chain', 'position']),
        ),
    ]
