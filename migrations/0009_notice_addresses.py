from tortoise import migrations
from tortoise.migrations import operations as ops
from models.fields import EncryptedField
from models.migration_ops import AlterFieldKeepingRows
from tortoise.fields.base import OnDelete
from tortoise import fields

# Mail to someone without an account (an invitation, a walk-in requester) goes through the
# same outbox as notices: a notice may name an address instead of an account, and may carry
# a secret link, sealed and cleared once the mail is sent or given up.


class Migration(migrations.Migration):
    dependencies = [('ocis', '0008_tickets_awaiting_requester')]

    initial = False
    # A column change rebuilds the table on SQLite: outside a transaction (see the operation).
    atomic = False

    operations = [
        ops.AlterModelOptions(
            name='Notice',
            options={'table': 'notices', 'app': 'ocis', 'pk_attr': 'id', 'table_description': 'One notice to one account, or one mail to an address that has none.'},
        ),
        AlterFieldKeepingRows(
            model_name='Notice',
            name='user',
            field=fields.ForeignKeyField('ocis.User', source_field='user_id', null=True, db_constraint=True, to_field='id', related_name='notices', on_delete=OnDelete.CASCADE),
        ),
        ops.AddField(
            model_name='Notice',
            name='address',
            field=EncryptedField(null=True),
        ),
        ops.AddField(
            model_name='Notice',
            name='link',
            field=EncryptedField(null=True),
        ),
    ]
