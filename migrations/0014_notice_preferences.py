from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

# Each person chooses which notices they want by mail (the ones they may turn off: replies
# and status changes of their tickets); a kind without a row is mailed.


class Migration(migrations.Migration):
    dependencies = [('ocis', '0012_local_accounts')]

    initial = False

    operations = [
        ops.CreateModel(
            name='NoticePreference',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('ocis.User', source_field='user_id', db_constraint=True, to_field='id', related_name='notice_preferences', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=50)),
                ('by_mail', fields.BooleanField()),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'notice_preferences', 'app': 'ocis', 'unique_together': (('user', 'kind'),), 'pk_attr': 'id', 'table_description': "One person's choice for one kind of notice they may turn off: by mail, or only here."},
            bases=['Entity'],
        ),
    ]
