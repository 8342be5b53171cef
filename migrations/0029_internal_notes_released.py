from tortoise import migrations
from tortoise import fields
from models.migration_ops import AddColumnInPlace

# Issue 12 item 3: the officer may release the internal notes on the subject's tickets into an
# access export, deciding so when starting the request. The requests already there released
# nothing: a column default fills them (in place, keeping the table's indexes on SQLite).

class Migration(migrations.Migration):
    dependencies = [('ocis', '0028_corrections_merged')]

    initial = False

    operations = [
        AddColumnInPlace(
            model_name='PrivacyRequest',
            name='internal_notes_released',
            field=fields.BooleanField(default=False),
            table='privacy_requests',
            column_sql='"internal_notes_released" BOOLEAN NOT NULL DEFAULT FALSE',
        ),
    ]
