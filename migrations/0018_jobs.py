from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.enums import JobState
from uuid import uuid4
from tortoise import fields

# Durable jobs (privacy/jobs.py): exports, erasure and retention, claimed with leases by any
# process and resumed from their checkpoint after a crash.


class Migration(migrations.Migration):
    dependencies = [('ocis', '0017_marketing_campaigns')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Job',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('kind', fields.CharField(max_length=50)),
                ('payload', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('state', fields.CharEnumField(default=JobState.QUEUED, db_index=True, description='QUEUED: queued\nRUNNING: running\nDONE: done\nFAILED: failed', enum_type=JobState, max_length=10)),
                ('run_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('attempts', fields.SmallIntField(default=0)),
                ('max_attempts', fields.SmallIntField(default=8)),
                ('lease_owner', fields.CharField(null=True, max_length=64)),
                ('lease_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error_code', fields.CharField(null=True, max_length=64)),
                ('dedupe_key', fields.CharField(null=True, unique=True, max_length=200)),
                ('progress', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'jobs', 'app': 'ocis', 'pk_attr': 'id', 'table_description': 'One unit of durable work (an export, an erasure, a retention run).'},
            bases=['Entity'],
        ),
    ]
