from tortoise import migrations
from tortoise.migrations import operations as ops
from models.enums import IdentityVerificationMethod, PrivacyRequestAction, PrivacyRequestChannel, PrivacyRequestStatus
from models.fields import EncryptedField
from models.migration_ops import AlterFieldKeepingRows
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

# The privacy-request workflow (issue 12): identity verification and duplicates as statuses,
# the append-only history of each request's steps (its notes sealed under the subject's key),
# requests registered by staff from the contact address (P28), one extension of the deadline.

class Migration(migrations.Migration):
    dependencies = [('ocis', '0018_jobs')]

    initial = False
    # A column change rebuilds the table on SQLite: outside a transaction (see the operation).
    atomic = False

    operations = [
        ops.CreateModel(
            name='PrivacyRequestStep',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('request', fields.ForeignKeyField('ocis.PrivacyRequest', source_field='request_id', db_constraint=True, to_field='id', related_name='steps', on_delete=OnDelete.CASCADE)),
                ('action', fields.CharEnumField(description='SUBMITTED: submitted\nREGISTERED: registered\nASSIGNED: assigned\nIDENTITY_VERIFIED: identity_verified\nSTARTED: started\nCOMPLETED: completed\nREJECTED: rejected\nEXTENDED: extended\nLINKED_AS_DUPLICATE: linked_as_duplicate', enum_type=PrivacyRequestAction, max_length=20)),
                ('subject', fields.ForeignKeyField('ocis.User', source_field='subject_id', db_constraint=True, to_field='id', related_name='privacy_request_steps', on_delete=OnDelete.CASCADE)),
                ('from_status', fields.CharEnumField(null=True, description='RECEIVED: received\nIDENTITY_VERIFIED: identity_verified\nIN_PROGRESS: in_progress\nCOMPLETED: completed\nREJECTED: rejected\nDUPLICATE: duplicate', enum_type=PrivacyRequestStatus, max_length=20)),
                ('to_status', fields.CharEnumField(description='RECEIVED: received\nIDENTITY_VERIFIED: identity_verified\nIN_PROGRESS: in_progress\nCOMPLETED: completed\nREJECTED: rejected\nDUPLICATE: duplicate', enum_type=PrivacyRequestStatus, max_length=20)),
                ('actor', fields.ForeignKeyField('ocis.User', source_field='actor_id', null=True, db_constraint=True, to_field='id', related_name='privacy_request_actions', on_delete=OnDelete.SET_NULL)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('note', EncryptedField(null=True)),
            ],
            options={'table': 'privacy_request_steps', 'app': 'ocis', 'indexes': [Index(fields=['request_id', 'at'])], 'pk_attr': 'id', 'table_description': "One append-only step of a request's history: a change of status, who made it, why."},
            bases=['Entity'],
        ),
        ops.AlterModelOptions(
            name='PrivacyRequest',
            options={'table': 'privacy_requests', 'app': 'ocis', 'indexes': [Index(fields=['status', 'due_at'])], 'pk_attr': 'id', 'table_description': 'A request to exercise a GDPR right; its status moves only through privacy/requests.py.'},
        ),
        AlterFieldKeepingRows(
            model_name='PrivacyRequest',
            name='status',
            field=fields.CharEnumField(default=PrivacyRequestStatus.RECEIVED, description='RECEIVED: received\nIDENTITY_VERIFIED: identity_verified\nIN_PROGRESS: in_progress\nCOMPLETED: completed\nREJECTED: rejected\nDUPLICATE: duplicate', enum_type=PrivacyRequestStatus, max_length=20),
        ),
        ops.AddField(
            model_name='PrivacyRequest',
            name='channel',
            field=fields.CharEnumField(default=PrivacyRequestChannel.SELF_SERVICE, description='SELF_SERVICE: self_service\nCONTACT_ADDRESS: contact_address', enum_type=PrivacyRequestChannel, max_length=20),
        ),
        ops.AddField(
            model_name='PrivacyRequest',
            name='duplicate_of',
            field=fields.ForeignKeyField('ocis.PrivacyRequest', source_field='duplicate_of_id', null=True, db_constraint=True, to_field='id', related_name='duplicates', on_delete=OnDelete.SET_NULL),
        ),
        ops.AddField(
            model_name='PrivacyRequest',
            name='extension_months',
            field=fields.SmallIntField(default=0),
        ),
        ops.AddField(
            model_name='PrivacyRequest',
            name='registered_by',
            field=fields.ForeignKeyField('ocis.User', source_field='registered_by_id', null=True, db_constraint=True, to_field='id', related_name='registered_privacy_requests', on_delete=OnDelete.SET_NULL),
        ),
        ops.AddField(
            model_name='PrivacyRequest',
            name='verification_method',
            field=fields.CharEnumField(null=True, description='SIGNED_IN_SESSION: signed_in_session\nEMAIL_LINK: email_link\nDOCUMENT_CHECK: document_check\nSTAFF_KNOWN_CONTACT: staff_known_contact', enum_type=IdentityVerificationMethod, max_length=20),
        ),
        ops.AddIndex(
            model_name='PrivacyRequest',
            index=Index(fields=['status', 'due_at']),
        ),
    ]
