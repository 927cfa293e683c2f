"""The admin role reads decrypted data: its group holds syncengine.read_decrypted."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    # Permissions are normally created after all migrations ran; this one is needed now.
    config = apps.get_app_config("syncengine")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.get(content_type__app_label="syncengine", codename="read_decrypted")
    group, _ = Group.objects.get_or_create(name="admin")
    group.permissions.add(permission)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    group = Group.objects.filter(name="admin").first()
    if group is not None:
        group.permissions.remove(*group.permissions.filter(codename="read_decrypted"))


class Migration(migrations.Migration):
    dependencies = [
        ("apikeys", "0002_role_groups"),
        ("syncengine", "0002_protection"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
