"""Mark the service users that earlier versions created as service accounts, so that their keys can still be
renewed and their roles changed.

Earlier versions created a service user with an unusable password and put it in one fdm role group. A user
is recognised when it still looks exactly like that: an unusable password, never logged in, neither superuser
nor staff, no permissions of its own, no groups but fdm's role groups, and a role group or an API key. Anyone
else (a person, an administrator, an account signed in through single sign-on) is left unmarked; keys it
already holds keep working, but it gets no new ones.
"""

from django.contrib.auth.hashers import is_password_usable
from django.db import migrations
from django.utils import timezone

ROLES = ("viewer", "operator", "admin")  # lowest first
REASON = "migration"
ACTOR = "migration 0005_recognise_service_accounts"


def recognise(apps, schema_editor):
    User = apps.get_model("auth", "User")
    ServiceAccount = apps.get_model("apikeys", "ServiceAccount")
    HistoricalServiceAccount = apps.get_model("apikeys", "HistoricalServiceAccount")
    candidates = (
        User.objects.filter(is_superuser=False, is_staff=False, last_login__isnull=True, service_account=None)
        .filter(user_permissions=None)
        .prefetch_related("groups")
    )
    now = timezone.now()
    for user in candidates:
        if is_password_usable(user.password):
            continue
        groups = {group.name for group in user.groups.all()}
        if not groups <= set(ROLES):
            continue
        if not groups and not user.api_keys.exists():
            continue
        role = max(groups, key=ROLES.index) if groups else ""
        account = ServiceAccount.objects.create(
            user=user, role=role, created_at=user.date_joined, created_by_name=ACTOR
        )
        HistoricalServiceAccount.objects.create(
            id=account.id,
            user_id=user.id,
            role=role,
            created_at=account.created_at,
            created_by_name=ACTOR,
            history_date=now,
            history_type="+",
            history_change_reason=REASON,
            history_actor=ACTOR,
        )


def unmark(apps, schema_editor):
    apps.get_model("apikeys", "ServiceAccount").objects.filter(created_by_name=ACTOR).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("apikeys", "0004_service_accounts_and_audit"),
    ]

    operations = [migrations.RunPython(recognise, unmark)]
