from tortoise import migrations
from models.migration_ops import AlterFieldKeepingRows
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('ocis', '0003_data_keys')]

    initial = False
    # A column change rebuilds the table on SQLite: outside a transaction (see the operation).
    atomic = False

    operations = [
        AlterFieldKeepingRows(
            model_name='User',
            name='email_index',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
    ]
