from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.fields import EncryptedField
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

# Staff administration: invitations (a token hash, a sealed address, the roles and team they
# grant) and archived teams. Both only add: a new table, and a nullable column on teams.


class Migration(migrations.Migration):
    dependencies = [('ocis', '0010_walk_in_requesters')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Invitation',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('email', EncryptedField(null=True)),
                ('email_index', fields.CharField(null=True, db_index=True, max_length=64)),
                ('roles', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('team', fields.ForeignKeyField('ocis.Team', source_field='team_id', null=True, db_constraint=True, to_field='id', related_name='invitations', on_delete=OnDelete.SET_NULL)),
                ('invited_by', fields.ForeignKeyField('ocis.User', source_field='invited_by_id', null=True, db_constraint=True, to_field='id', related_name='invitations_sent', on_delete=OnDelete.SET_NULL)),
                ('accepted_by', fields.ForeignKeyField('ocis.User', source_field='accepted_by_id', null=True, db_constraint=True, to_field='id', related_name='invitations_accepted', on_delete=OnDelete.SET_NULL)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('accepted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'invitations', 'app': 'ocis', 'pk_attr': 'id', 'table_description': "An administrator's invitation of one address to some staff roles (and a team)."},
            bases=['Entity'],
        ),
        ops.AddField(
            model_name='Team',
            name='archived_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
