from tortoise import migrations
from tortoise.migrations import operations as ops
from models.enums import ConsentSource, PrivacyRequestAction, PrivacyRequestChannel
from models.fields import EncryptedField
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index
from models.migration_ops import DescribeEnumValues

# Legal holds and disclosures (issue 13 item 2, P13); erasure (item 1, P24): the proof of a
# withdrawal an erasure keeps, the step of a request blocked by a hold, and the erasure of a
# child's account that no one asked for (item 4, P29).

class Migration(migrations.Migration):
    dependencies = [('ocis', '0025_exports')]

    initial = False

    operations = [
        ops.CreateModel(
            name='LegalDisclosure',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('subject', fields.ForeignKeyField('ocis.User', source_field='subject_id', db_constraint=True, to_field='id', related_name='legal_disclosures', on_delete=OnDelete.CASCADE)),
                ('authority', fields.CharField(max_length=200)),
                ('legal_basis', EncryptedField()),
                ('data_categories', fields.JSONField(default=list)),
                ('disclosed_on', fields.DateField()),
                ('subject_may_be_told_on', fields.DateField(null=True)),
                ('recorded_by', fields.ForeignKeyField('ocis.User', source_field='recorded_by_id', null=True, db_constraint=True, to_field='id', related_name='legal_disclosures_recorded', on_delete=OnDelete.SET_NULL)),
                ('recorded_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'legal_disclosures', 'app': 'ocis', 'pk_attr': 'id', 'table_description': 'Personal data handed to an authority because the law required it.'},
            bases=['Entity'],
        ),
        ops.CreateModel(
            name='LegalHold',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('subject', fields.ForeignKeyField('ocis.User', source_field='subject_id', db_constraint=True, to_field='id', related_name='legal_holds', on_delete=OnDelete.CASCADE)),
                ('authority', fields.CharField(max_length=200)),
                ('reference', EncryptedField()),
                ('reason', EncryptedField()),
                ('review_on', fields.DateField()),
                ('placed_by', fields.ForeignKeyField('ocis.User', source_field='placed_by_id', null=True, db_constraint=True, to_field='id', related_name='legal_holds_placed', on_delete=OnDelete.SET_NULL)),
                ('placed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('lifted_by', fields.ForeignKeyField('ocis.User', source_field='lifted_by_id', null=True, db_constraint=True, to_field='id', related_name='legal_holds_lifted', on_delete=OnDelete.SET_NULL)),
                ('lifted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'legal_holds', 'app': 'ocis', 'indexes': [Index(fields=['subject_id', 'lifted_at'])], 'pk_attr': 'id', 'table_description': "A hold on a subject's data: while active (not lifted), erasure and retention skip it."},
            bases=['Entity'],
        ),
        DescribeEnumValues(
            model_name='ConsentEntry',
            name='source',
            field=fields.CharEnumField(description='WEB: web\nMOBILE: mobile\nEMAIL_LINK: email_link\nSTAFF_ON_BEHALF: staff_on_behalf\nGPC: gpc\nAPI: api\nERASURE: erasure', enum_type=ConsentSource, max_length=30),
        ),
        DescribeEnumValues(
            model_name='PrivacyRequest',
            name='channel',
            field=fields.CharEnumField(default=PrivacyRequestChannel.SELF_SERVICE, description='SELF_SERVICE: self_service\nCONTACT_ADDRESS: contact_address\nCHILD_ACCOUNT: child_account', enum_type=PrivacyRequestChannel, max_length=20),
        ),
        DescribeEnumValues(
            model_name='PrivacyRequestStep',
            name='action',
            field=fields.CharEnumField(description='SUBMITTED: submitted\nREGISTERED: registered\nASSIGNED: assigned\nIDENTITY_VERIFIED: identity_verified\nSTARTED: started\nCOMPLETED: completed\nREJECTED: rejected\nEXTENDED: extended\nLINKED_AS_DUPLICATE: linked_as_duplicate\nRESTRICTION_LIFTED: restriction_lifted\nERASURE_BLOCKED: erasure_blocked', enum_type=PrivacyRequestAction, max_length=20),
        ),
    ]

