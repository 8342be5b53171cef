from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

# Tickets staff open on someone's behalf withhold the requester's contact details until the
# requester writes on the ticket or someone else assigns it (auth/policy.py). The tickets
# already there were not opened under this rule: a column default fills them with "nothing
# withheld" (a plain AddField would add a NOT NULL column without one, which both backends
# refuse on a table with rows).


class AddFieldFillingRows(ops.AddField):
    """AddField whose column default, in the database, fills the rows already there."""

    def __init__(self, model_name, name, field, *, column_sql):
        super().__init__(model_name=model_name, name=name, field=field)
        self.column_sql = column_sql

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor:
            await state_editor.client.execute_script(
                f'ALTER TABLE "tickets" ADD COLUMN {self.column_sql}'
            )


class Migration(migrations.Migration):
    dependencies = [('ocis', '0007_audit_chains')]

    initial = False

    operations = [
        AddFieldFillingRows(
            model_name='Ticket',
            name='awaiting_requester',
            field=fields.BooleanField(default=False),
            column_sql='"awaiting_requester" BOOLEAN NOT NULL DEFAULT FALSE',
        ),
    ]
