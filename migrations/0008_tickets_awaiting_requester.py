from tortoise import migrations
from tortoise import fields

from models.migration_ops import AddFieldFillingRows

# Tickets staff open on someone's behalf withhold the requester's contact details until the
# requester writes on the ticket or someone else assigns it (auth/policy.py). The tickets
# already there were not opened under this rule: a column default fills them with "nothing
# withheld" (a plain AddField would add a NOT NULL column without one, which both backends
# refuse on a table with rows).


class Migration(migrations.Migration):
    dependencies = [('ocis', '0007_audit_chains')]

    initial = False

    operations = [
        AddFieldFillingRows(
            model_name='Ticket',
            name='awaiting_requester',
            field=fields.BooleanField(default=False),
            table='tickets',
            column_sql='"awaiting_requester" BOOLEAN NOT NULL DEFAULT FALSE',
        ),
    ]
