from tortoise import migrations
from tortoise.migrations import operations as ops
from models.crypto import KeyPurpose
from models.keys import KeyState
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('ocis', '0002_audit_access')]

    initial = False

    operations = [
        ops.CreateModel(
            name='DataKey',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=16)),
                ('purpose', fields.CharEnumField(default=KeyPurpose.DATA, description='DATA: data\nBLIND_INDEX: blind_index', enum_type=KeyPurpose, max_length=16)),
                ('subject_id', fields.UUIDField(null=True)),
                ('version', fields.IntField(default=1)),
                ('state', fields.CharEnumField(default=KeyState.ACTIVE, description='ACTIVE: active\nSUPERSEDED: superseded\nRETIRED: retired\nDESTROYED: destroyed', enum_type=KeyState, max_length=16)),
                ('wrapped_key', fields.CharField(null=True, max_length=128)),
                ('kek_id', fields.CharField(null=True, max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'data_keys', 'app': 'ocis', 'indexes': [Index(fields=['subject_id', 'state'])], 'pk_attr': 'id', 'table_description': "A wrapped key: a subject's data key (one per version) or the blind-index key."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='KeyRotation',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'key_rotations', 'app': 'ocis', 'pk_attr': 'id', 'table_description': 'One run of data-key rotation: an unfinished run is resumed by the next one.'},
            bases=['Model'],
        ),
    ]
