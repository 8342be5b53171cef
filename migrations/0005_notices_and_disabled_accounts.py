from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.enums import MailStatus, UserStatus
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('ocis', '0004_federated_accounts')]

    initial = False

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
        ops.AlterField(
            model_name='User',
            name='status',
            field=fields.CharEnumField(default=UserStatus.ACTIVE, description='ACTIVE: active\nRESTRICTED: restricted\nDISABLED: disabled\nERASED: erased', enum_type=UserStatus, max_length=16),
        ),
    ]
