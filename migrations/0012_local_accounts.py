from tortoise import migrations
from tortoise.migrations import operations as ops
from models.enums import AccountTokenPurpose
from models.fields import EncryptedField
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from models.migration_ops import AddFieldKeepingRows

# Local accounts verify their address by a mailed single-use link, reset a forgotten password
# and confirm a new address the same way (account_tokens keeps only each token's hash).
# Accounts already there were made before verification existed: those whose address finds
# them (a registration, a provider that vouched for it, an administrator, the demo data) count
# as verified since they were created. An address that does not find its account stays
# unverified, as it was never mailed.
FILL_VERIFIED_SQL = (
    'UPDATE "users" SET "email_verified_at" = "created_at"'
    ' WHERE "email_index" IS NOT NULL AND "email_verified_at" IS NULL'
)


async def count_existing_as_verified(apps, schema_editor):
    await schema_editor.client.execute_script(FILL_VERIFIED_SQL)


async def nothing_to_undo(apps, schema_editor):
    """The column goes away with the field."""


class Migration(migrations.Migration):
    dependencies = [('ocis', '0011_staff_and_teams')]

    initial = False
    # Undoing the new column rebuilds the users table on SQLite: outside a transaction.
    atomic = False

    operations = [
        ops.CreateModel(
            name='AccountToken',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('ocis.User', source_field='user_id', db_constraint=True, to_field='id', related_name='account_tokens', on_delete=OnDelete.CASCADE)),
                ('purpose', fields.CharEnumField(description='VERIFY_EMAIL: verify_email\nRESET_PASSWORD: reset_password\nCHANGE_EMAIL: change_email', enum_type=AccountTokenPurpose, max_length=16)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('new_email', EncryptedField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'account_tokens', 'app': 'ocis', 'pk_attr': 'id', 'table_description': 'A single-use mailed link: verify an address, reset a password, confirm a new address.'},
            bases=['Entity'],
        ),
        AddFieldKeepingRows(
            model_name='User',
            name='email_verified_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.RunPython(count_existing_as_verified, nothing_to_undo),
    ]
