from tortoise import migrations
from models.migration_ops import AlterFieldKeepingRows
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.enums import MailStatus, UserStatus
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

# Google's ID tokens spell their issuer with or without https://; identities were keyed by
# the spelling a token used until they were keyed by the canonical one. Rows of the bare
# spelling move to it, unless the same subject already has a row there.
CANONICAL_GOOGLE_SQL = """
UPDATE external_identities SET issuer = 'https://accounts.google.com'
WHERE issuer = 'accounts.google.com' AND NOT EXISTS (
    SELECT 1 FROM external_identities AS canonical
    WHERE canonical.issuer = 'https://accounts.google.com'
      AND canonical.subject = external_identities.subject
      AND canonical.tenant_id = external_identities.tenant_id
)
"""


async def canonical_google_issuer(apps, schema_editor):
    await schema_editor.client.execute_script(CANONICAL_GOOGLE_SQL)


async def keep_issuers(apps, schema_editor):
    """Nothing to undo: the canonical spelling is accepted either way."""


class Migration(migrations.Migration):
    dependencies = [('ocis', '0004_federated_accounts')]

    initial = False
    # A column change rebuilds the table on SQLite: outside a transaction (see the operation).
    atomic = False

    operations = [
        ops.CreateModel(
            name='Notice',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('ocis.User', source_field='user_id', db_constraint=True, to_field='id', related_name='notices', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=50)),
                ('params', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('read_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('mail_status', fields.CharEnumField(default=MailStatus.PENDING, db_index=True, description='PENDING: pending\nSENDING: sending\nSENT: sent\nFAILED: failed\nCANCELLED: cancelled', enum_type=MailStatus, max_length=10)),
                ('mail_attempts', fields.SmallIntField(default=0)),
                ('mail_due_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('mail_sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'notices', 'app': 'ocis', 'pk_attr': 'id', 'table_description': 'One notice to one account. Its params never hold personal data, only names and times.'},
            bases=['Entity'],
        ),
        AlterFieldKeepingRows(
            model_name='User',
            name='status',
            field=fields.CharEnumField(default=UserStatus.ACTIVE, description='ACTIVE: active\nRESTRICTED: restricted\nDISABLED: disabled\nERASED: erased', enum_type=UserStatus, max_length=16),
        ),
        ops.AddField(
            model_name='User',
            name='status_before_disable',
            field=fields.CharEnumField(null=True, description='ACTIVE: active\nRESTRICTED: restricted\nDISABLED: disabled\nERASED: erased', enum_type=UserStatus, max_length=16),
        ),
        ops.RunPython(canonical_google_issuer, keep_issuers),
    ]
