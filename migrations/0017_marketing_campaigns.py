from tortoise import migrations
from tortoise.migrations import operations as ops
from models.enums import CampaignState
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

# Marketing campaigns (P12): written by staff, sent once to the accounts whose latest
# marketing-email decision is a grant (the purpose itself came with 0016).


class Migration(migrations.Migration):
    dependencies = [('ocis', '0016_consent_for_visitors')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Campaign',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('subject', fields.CharField(max_length=150)),
                ('body', fields.TextField(unique=False)),
                ('created_by', fields.ForeignKeyField('ocis.User', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='campaigns', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('state', fields.CharEnumField(default=CampaignState.DRAFT, description='DRAFT: draft\nSENDING: sending\nSENT: sent', enum_type=CampaignState, max_length=10)),
                ('eligible', fields.IntField(default=0)),
                ('queued', fields.IntField(default=0)),
            ],
            options={'table': 'campaigns', 'app': 'ocis', 'pk_attr': 'id', 'table_description': 'A marketing mail written by staff (P12), sent once to every account that consents.'},
            bases=['Entity'],
        ),
    ]
