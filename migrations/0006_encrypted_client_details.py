from tortoise import migrations
from tortoise.migrations import operations as ops
from models.fields import EncryptedField
from models.migration_ops import AlterFieldKeepingRows, open_ciphertext, seal_plaintext

# Personal columns (auth/policy.py PERSONAL_FIELDS) that were plaintext: a dump showed them.
# Rows already there are sealed under their subject's data key (OCIS_MASTER_KEY is read).
SEALED = [
    ('users', 'id', ['locale', 'time_zone']),
    ('sign_in_sessions', 'user_id', ['browser', 'browser_version', 'os', 'device_type', 'time_zone']),
    ('payment_methods', 'user_id', ['brand', 'last4']),
]


async def seal_existing_rows(apps, schema_editor):
    for table, subject, columns in SEALED:
        await seal_plaintext(schema_editor.client, table, subject, columns)


async def open_existing_rows(apps, schema_editor):
    for table, _, columns in SEALED:
        await open_ciphertext(schema_editor.client, table, columns)


class Migration(migrations.Migration):
    dependencies = [('ocis', '0005_notices_and_disabled_accounts')]

    initial = False
    # A column change rebuilds the table on SQLite: outside a transaction (see the operation).
    atomic = False

    operations = [
        AlterFieldKeepingRows(
            model_name='PaymentMethod',
            name='brand',
            field=EncryptedField(),
        ),
        AlterFieldKeepingRows(
            model_name='PaymentMethod',
            name='last4',
            field=EncryptedField(),
        ),
        AlterFieldKeepingRows(
            model_name='SignInSession',
            name='browser',
            field=EncryptedField(null=True),
        ),
        AlterFieldKeepingRows(
            model_name='SignInSession',
            name='browser_version',
            field=EncryptedField(null=True),
        ),
        AlterFieldKeepingRows(
            model_name='SignInSession',
            name='device_type',
            field=EncryptedField(null=True),
        ),
        AlterFieldKeepingRows(
            model_name='SignInSession',
            name='os',
            field=EncryptedField(null=True),
        ),
        AlterFieldKeepingRows(
            model_name='SignInSession',
            name='time_zone',
            field=EncryptedField(null=True),
        ),
        AlterFieldKeepingRows(
            model_name='User',
            name='locale',
            field=EncryptedField(default='en'),
        ),
        AlterFieldKeepingRows(
            model_name='User',
            name='time_zone',
            field=EncryptedField(default='UTC'),
        ),
        ops.RunPython(seal_existing_rows, open_existing_rows),
    ]
