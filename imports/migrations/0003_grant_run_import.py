from django.db import migrations

# The name of the administrator role in patients/roles.py.
ADMINISTRATOR = "Administrator"


def grant_to_existing_administrators(apps, schema_editor):
    """Give an Administrator role created before this permission existed the right to import.

    A new database gets the permission with the role, after migrating; this
    is for databases whose roles were created earlier, which are otherwise
    left as the practice set them.
    """
    Group = apps.get_model("auth", "Group")
    group = Group.objects.filter(name=ADMINISTRATOR).first()
    if group is None:
        return
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    content_type, _ = ContentType.objects.get_or_create(
        app_label="imports", model="importrun"
    )
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type,
        codename="run_import",
        defaults={"name": "Can import patients from an uploaded file"},
    )
    group.permissions.add(permission)


class Migration(migrations.Migration):

    dependencies = [
        ("imports", "0002_import_progress"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(grant_to_existing_administrators, migrations.RunPython.noop),
    ]
