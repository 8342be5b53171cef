from tortoise import migrations
from tortoise.migrations import operations as ops
from models.fields import EncryptedField
from models.migration_ops import AddNullableColumn

# Rectification (issue 12 item 4, P23): a request's proposed corrections and their decisions,
# sealed under the subject's data key like the profile values they would replace.


class Migration(migrations.Migration):
    dependencies = [('ocis', '0022_persisted_documents')]

    initial = False

    operations = [
        AddNullableColumn(
            table='privacy_requests',
            model_name='PrivacyRequest',
            name='corrections',
            field=EncryptedField(null=True),
        ),
    ]
