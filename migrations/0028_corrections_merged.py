from tortoise import migrations
from models.enums import PrivacyRequestAction
from tortoise import fields
from models.migration_ops import AlterFieldKeepingRows

# Issue 12: a request's history records the corrections a duplicate rectification added to it.

class Migration(migrations.Migration):
    dependencies = [('ocis', '0026_legal_holds_and_erasure')]

    initial = False
    # A column change rebuilds the table on SQLite: outside a transaction (see the operations).
    atomic = False

    operations = [
        AlterFieldKeepingRows(
            model_name='PrivacyRequestStep',
            name='action',
            field=fields.CharEnumField(description='SUBMITTED: submitted\nREGISTERED: registered\nASSIGNED: assigned\nIDENTITY_VERIFIED: identity_verified\nSTARTED: started\nCOMPLETED: completed\nREJECTED: rejected\nEXTENDED: extended\nLINKED_AS_DUPLICATE: linked_as_duplicate\nCORRECTIONS_MERGED: corrections_merged\nRESTRICTION_LIFTED: restriction_lifted\nERASURE_BLOCKED: erasure_blocked', enum_type=PrivacyRequestAction, max_length=20),
        ),
    ]
