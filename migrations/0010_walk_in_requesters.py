from tortoise import migrations
from tortoise.migrations import operations as ops
from models.fields import EncryptedField
from models.migration_ops import name_walk_ins
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

# Reads of an email-only requester's ticket were recorded against nobody: a walk-in row now
# names them (one per email blind index) and the ticket points at it. The tickets already
# there get theirs from the address and name typed on their oldest ticket, sealed under the
# walk-in's own data key (OCIS_MASTER_KEY is read when there are such tickets). The tickets
# keep the columns typed on them; going back drops the walk-ins and nothing else.


async def name_existing_walk_ins(apps, schema_editor):
    await name_walk_ins(schema_editor.client)


async def keep_tickets(apps, schema_editor):
    """Nothing to undo: dropping the column and the table forgets the walk-ins."""


class Migration(migrations.Migration):
    dependencies = [('ocis', '0009_notice_addresses')]

    initial = False

    operations = [
        ops.CreateModel(
            name='WalkInRequester',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('email', EncryptedField()),
                ('email_index', fields.CharField(unique=True, max_length=64)),
                ('name', EncryptedField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'walk_in_requesters', 'app': 'ocis', 'pk_attr': 'id', 'table_description': 'Someone who wrote in by email without an account: the person the audit names for them.'},
            bases=['Entity'],
        ),
        ops.AddField(
            model_name='Ticket',
            name='walk_in',
            field=fields.ForeignKeyField('ocis.WalkInRequester', source_field='walk_in_id', null=True, db_constraint=True, to_field='id', related_name='tickets', on_delete=OnDelete.SET_NULL),
        ),
        ops.RunPython(name_existing_walk_ins, keep_tickets),
    ]
