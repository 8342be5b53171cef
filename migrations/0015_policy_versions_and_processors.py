from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.enums import ConsentPurpose, TransferSafeguard
from models.migration_ops import AddFieldFillingRows, AlterFieldKeepingRows
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

# Policy versions take effect at a date of their own (P31) and say where they are read; the
# consent ledger records acceptances of a version; announcements to every user (P16) are
# written once and fanned out to per-user notices in batches; processors are registered with
# their country and transfer safeguard (P15, P30).


class AddEffectiveAt(AddFieldFillingRows):
    """A version published before this migration took effect when it was published."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None:
            return
        client = state_editor.client
        kind = "TIMESTAMPTZ" if client.capabilities.dialect == "postgres" else "TIMESTAMP"
        await client.execute_script(
            # A constant default: SQLite refuses a computed one on a table with rows.
            f'ALTER TABLE "policy_versions" ADD COLUMN "effective_at" {kind} NOT NULL'
            " DEFAULT '1970-01-01 00:00:00+00:00'"
        )
        await client.execute_script(
            'UPDATE "policy_versions" SET "effective_at" = "published_at"'
        )


class Migration(migrations.Migration):
    dependencies = [('ocis', '0014_notice_preferences')]

    initial = False
    # A column change rebuilds the table on SQLite: outside a transaction (see the operation).
    atomic = False

    operations = [
        ops.CreateModel(
            name='Announcement',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('title', fields.CharField(max_length=150)),
                ('body', fields.TextField(unique=False)),
                ('created_by', fields.ForeignKeyField('ocis.User', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='announcements', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'announcements', 'app': 'ocis', 'pk_attr': 'id', 'table_description': 'What an administrator told every user (a business transfer, a change of ownership).'},
            bases=['Entity'],
        ),
        ops.CreateModel(
            name='NoticeFanout',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('kind', fields.CharField(max_length=50)),
                ('params', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('cursor', fields.UUIDField(null=True)),
                ('notified', fields.IntField(default=0)),
                ('lease_until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('done_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'notice_fanouts', 'app': 'ocis', 'pk_attr': 'id', 'table_description': 'A notice owed to every account that existed when it was asked for, written in batches.'},
            bases=['Entity'],
        ),
        ops.CreateModel(
            name='Processor',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=200)),
                ('purpose', fields.TextField(unique=False)),
                ('data_categories', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('country', fields.CharField(max_length=2)),
                ('safeguard', fields.CharEnumField(description='ADEQUACY_DECISION: adequacy_decision\nSTANDARD_CONTRACTUAL_CLAUSES: standard_contractual_clauses\nBINDING_CORPORATE_RULES: binding_corporate_rules\nNOT_NEEDED_EEA: not_needed_eea', enum_type=TransferSafeguard, max_length=30)),
                ('contract_date', fields.DateField(null=True)),
                ('system_role', fields.CharField(null=True, unique=True, max_length=30)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'processors', 'app': 'ocis', 'pk_attr': 'id', 'table_description': 'A processor OCIS hands personal data to, under contract (P15), and where it is (P30).'},
            bases=['Entity'],
        ),
        AlterFieldKeepingRows(
            model_name='ConsentEntry',
            name='purpose',
            field=fields.CharEnumField(description='PREFERENCES: preferences\nSTATISTICS: statistics\nMARKETING: marketing\nPRIVACY_POLICY: privacy_policy', enum_type=ConsentPurpose, max_length=20),
        ),
        ops.AlterModelOptions(
            name='PolicyVersion',
            options={'table': 'policy_versions', 'app': 'ocis', 'pk_attr': 'id', 'table_description': 'One published version of the privacy policy; in effect from ``effective_at``.'},
        ),
        AddEffectiveAt(
            model_name='PolicyVersion',
            name='effective_at',
            field=fields.DatetimeField(auto_now=False, auto_now_add=False),
            table='policy_versions',
            column_sql='',
        ),
        ops.AddField(
            model_name='PolicyVersion',
            name='text',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='PolicyVersion',
            name='url',
            field=fields.CharField(null=True, max_length=500),
        ),
    ]
