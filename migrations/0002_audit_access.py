from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION ocis_audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION ocis_audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION ocis_audit_events_append_only();
"""

SQLITE_APPEND_ONLY_SQL = """
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
"""

SQLITE_DROP_APPEND_ONLY_SQL = """
DROP TRIGGER IF EXISTS audit_events_no_update;
DROP TRIGGER IF EXISTS audit_events_no_delete;
"""

DROP_APPEND_ONLY_SQL = """
DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events;
DROP TRIGGER IF EXISTS audit_events_no_change ON audit_events;
DROP FUNCTION IF EXISTS ocis_audit_events_append_only();
"""


async def make_append_only(apps, schema_editor):
    """The application cannot update, delete (or, on PostgreSQL, truncate) audit records."""
    postgres = schema_editor.client.capabilities.dialect == "postgres"
    await schema_editor.client.execute_script(
        APPEND_ONLY_SQL if postgres else SQLITE_APPEND_ONLY_SQL
    )


async def allow_changes(apps, schema_editor):
    postgres = schema_editor.client.capabilities.dialect == "postgres"
    await schema_editor.client.execute_script(
        DROP_APPEND_ONLY_SQL if postgres else SQLITE_DROP_APPEND_ONLY_SQL
    )


class Migration(migrations.Migration):
    dependencies = [('ocis', '0001_initial')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='AuditEvent',
            name='prev_hash',
            field=fields.CharField(unique=True, max_length=64),
        ),
        ops.AddField(
            model_name='AuditEvent',
            name='actor_roles',
            field=fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='AuditEvent',
            name='purpose',
            field=fields.CharField(null=True, max_length=100),
        ),
        ops.RunPython(make_append_only, allow_changes),
    ]
