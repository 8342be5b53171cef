from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('ocis', '0003_data_keys')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='User',
            name='email_index',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
    ]
