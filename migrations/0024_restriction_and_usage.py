from tortoise import migrations
from tortoise.migrations import operations as ops
from models.enums import JobState, PrivacyRequestAction
from uuid import uuid4
from tortoise import fields
from models.migration_ops import AddFieldKeepingRows, AlterFieldKeepingRows

# Rights (issue 12 items 5-7): jobs name their subject and park while that subject's processing
# is restricted (P25); a request's history records the lifting of its restriction; usage
# analytics kept as counts per feature and day, with no person (P09).

class Migration(migrations.Migration):
    dependencies = [('ocis', '0023_rectification')]

    initial = False
    # A column change rebuilds the table on SQLite: outside a transaction (see the operations).
    atomic = False

    operations = [
        ops.CreateModel(
            name='UsageCount',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('feature', fields.CharField(max_length=64)),
                ('day', fields.DateField()),
                ('events', fields.BigIntField(default=0)),
            ],
            options={'table': 'usage_counts', 'app': 'ocis', 'unique_together': (('feature', 'day'),), 'pk_attr': 'id', 'table_description': 'How many usage events of one feature were kept on one day (UTC); no person id.'},
            bases=['Entity'],
        ),
        AlterFieldKeepingRows(
            model_name='Job',
            name='state',
            field=fields.CharEnumField(default=JobState.QUEUED, db_index=True, description='QUEUED: queued\nRUNNING: running\nDONE: done\nFAILED: failed\nPARKED: parked', enum_type=JobState, max_length=10),
        ),
        AddFieldKeepingRows(
            model_name='Job',
            name='subject_id',
            field=fields.UUIDField(null=True, db_index=True),
        ),
        AlterFieldKeepingRows(
            model_name='PrivacyRequestStep',
            name='action',
            field=fields.CharEnumField(description='SUBMITTED: submitted\nREGISTERED: registered\nASSIGNED: assigned\nIDENTITY_VERIFIED: identity_verified\nSTARTED: started\nCOMPLETED: completed\nREJECTED: rejected\nEXTENDED: extended\nLINKED_AS_DUPLICATE: linked_as_duplicate\nRESTRICTION_LIFTED: restriction_lifted', enum_type=PrivacyRequestAction, max_length=20),
        ),
    ]

