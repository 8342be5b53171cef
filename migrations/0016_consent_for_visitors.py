from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

from models.enums import ConsentPurpose, ConsentSource
from models.migration_ops import AddFieldFillingRows, AlterFieldKeepingRows

# Consent for visitors and users (P05): the purposes become necessary, preferences, statistics,
# marketing cookies, marketing email, terms and privacy policy. The one marketing purpose there
# was meant mail (nothing sent marketing cookies), so its entries become marketing email. The
# source is a closed vocabulary; entries from before it ("api", or anything else) keep "api".
# An objection is a withdrawal that says so: a column default fills the existing rows with
# "no objection".

TO_MARKETING_EMAIL_SQL = (
    "UPDATE \"consent_entries\" SET \"purpose\" = 'marketing_email' WHERE \"purpose\" = 'marketing'"
)
BACK_TO_MARKETING_SQL = (
    "UPDATE \"consent_entries\" SET \"purpose\" = 'marketing'"
    " WHERE \"purpose\" = 'marketing_email'"
)
KNOWN_SOURCES = ", ".join(f"'{source.value}'" for source in ConsentSource)
LEGACY_SOURCES_SQL = (
    f"UPDATE \"consent_entries\" SET \"source\" = 'api' WHERE \"source\" NOT IN ({KNOWN_SOURCES})"
)


async def rename_marketing(apps, schema_editor):
    await schema_editor.client.execute_script(TO_MARKETING_EMAIL_SQL)
    await schema_editor.client.execute_script(LEGACY_SOURCES_SQL)


async def name_marketing_again(apps, schema_editor):
    await schema_editor.client.execute_script(BACK_TO_MARKETING_SQL)


class Migration(migrations.Migration):
    dependencies = [('ocis', '0015_policy_versions_and_processors')]

    initial = False
    # A column change rebuilds the table on SQLite: outside a transaction (see the operation).
    atomic = False

    operations = [
        ops.RunPython(rename_marketing, name_marketing_again),
        AlterFieldKeepingRows(
            model_name='ConsentEntry',
            name='purpose',
            field=fields.CharEnumField(description='NECESSARY: necessary\nPREFERENCES: preferences\nSTATISTICS: statistics\nMARKETING_COOKIES: marketing_cookies\nMARKETING_EMAIL: marketing_email\nTERMS: terms\nPRIVACY_POLICY: privacy_policy', enum_type=ConsentPurpose, max_length=20),
        ),
        AlterFieldKeepingRows(
            model_name='ConsentEntry',
            name='source',
            field=fields.CharEnumField(description='WEB: web\nMOBILE: mobile\nEMAIL_LINK: email_link\nSTAFF_ON_BEHALF: staff_on_behalf\nGPC: gpc\nAPI: api', enum_type=ConsentSource, max_length=30),
        ),
        AddFieldFillingRows(
            model_name='ConsentEntry',
            name='objection',
            field=fields.BooleanField(default=False),
            table='consent_entries',
            column_sql='"objection" BOOLEAN NOT NULL DEFAULT FALSE',
        ),
    ]
