"""Admin endpoints for API keys and users: /api/v1/admin/keys/ and /api/v1/admin/users/.

Keys are issued only to service accounts (`services.NotAServiceAccount`, answered with 409); every creation,
revocation and role change is recorded with the admin who made it and the channel "api".
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from fdm.api.pagination import PAGE_PARAMETERS, Pagination
from fdm.api.permissions import IsAdmin
from fdm.api.roles import ROLE_NAMES, Role, role_of
from fdm.api.schema import error_response
from fdm.api.views import ApiView
from fdm.apikeys import selectors, services
from fdm.apikeys.models import ApiKey, Channel

TAGS = ["admin"]
MAX_ID = 2**63 - 1
NOT_A_SERVICE_ACCOUNT = "The user is not a service account (a person, a superuser or a staff user)."


class ApiKeySerializer(serializers.ModelSerializer):
    """A key as listed: never the secret itself."""

    user = serializers.CharField(source="user.username")
    role = serializers.SerializerMethodField()
    active = serializers.BooleanField(source="is_active")
    created_by = serializers.SerializerMethodField()
    created_by_name = serializers.CharField(
        help_text="Who created the key: a username, or the OS user who ran `create_api_key` on the server; "
        "empty for keys made before this was recorded."
    )

    class Meta:
        model = ApiKey
        fields: tuple[str, ...] = (
            "id",
            "name",
            "prefix",
            "user",
            "role",
            "active",
            "created_at",
            "created_by",
            "created_by_name",
            "last_used_at",
            "expires_at",
            "revoked_at",
        )
        read_only_fields: tuple[str, ...] = fields

    @extend_schema_field({"type": ["string", "null"], "description": "viewer, operator, admin or null"})
    def get_role(self, api_key: ApiKey) -> str | None:
        role = role_of(api_key.user)
        return role.label if role is not None else None

    @extend_schema_field(
        {"type": ["string", "null"], "description": "The account that created the key; null for the command."}
    )
    def get_created_by(self, api_key: ApiKey) -> str | None:
        return api_key.created_by.get_username() if api_key.created_by is not None else None


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.SerializerMethodField(
        help_text="The key itself. Shown only in this response; store it now."
    )

    class Meta(ApiKeySerializer.Meta):
        fields: tuple[str, ...] = (*ApiKeySerializer.Meta.fields, "key")
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_key(self, api_key: ApiKey) -> str:
        return self.context["key"]


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.RegexField(
        r"^[\w.@+-]+\Z",
        max_length=150,
        help_text="The service account's name (created when missing), also the key's. An existing user must "
        "be a service account: a person, a superuser or a staff user is refused with 409.",
    )
    role = serializers.ChoiceField(choices=ROLE_NAMES, help_text="The service user's role.")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, help_text="Empty: never expires.")


def _actor(request: Request) -> services.Actor:
    return services.Actor.of_user(request.user, Channel.API)


def _key_or_404(key_id: int) -> ApiKey:
    key = (
        ApiKey.objects.select_related("user", "created_by").filter(pk=key_id).first()
        if key_id <= MAX_ID
        else None
    )
    if key is None:
        raise NotFound(f"No API key with id {key_id}.")
    return key


class ApiKeyListView(ApiView):
    """List keys, and create a key for a service user."""

    permission_classes = [IsAdmin]
    pagination_class = Pagination

    @extend_schema(
        tags=TAGS,
        summary="List API keys",
        parameters=[
            OpenApiParameter("active", OpenApiTypes.BOOL, description="Only usable (true) or unusable keys."),
            *PAGE_PARAMETERS,
        ],
        responses={200: ApiKeySerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("active", "").lower()
        if raw not in {"", "true", "false", "1", "0"}:
            raise serializers.ValidationError({"active": [f"must be true or false, got {raw!r}"]})
        active = None if raw == "" else raw in {"true", "1"}
        keys: QuerySet[ApiKey] = selectors.api_key_list(active=active)
        return self.paginated(keys, ApiKeySerializer)

    @extend_schema(
        tags=TAGS,
        summary="Create an API key",
        description="Creates (or reuses) the service account `name` with `role`, as `manage.py create_api_key` "
        "does, and a new key for it. The key is in this response only. A user that is not a service account "
        "(a person, a superuser, a staff user) is refused with 409 and left unchanged.",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer, 409: error_response(NOT_A_SERVICE_ACCOUNT)},
    )
    def post(self, request: Request) -> Response:
        payload = ApiKeyCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        record, key = services.service_key_create(
            username=data["name"],
            role=Role.parse(data["role"]),
            expires_at=data.get("expires_at"),
            actor=_actor(request),
        )
        return Response(
            ApiKeyCreatedSerializer(record, context={"key": key}).data, status=status.HTTP_201_CREATED
        )


class ApiKeyDetailView(ApiView):
    """Read or revoke one key."""

    permission_classes = [IsAdmin]

    @extend_schema(tags=TAGS, summary="Read an API key", responses={200: ApiKeySerializer})
    def get(self, request: Request, key_id: int) -> Response:
        return Response(ApiKeySerializer(_key_or_404(key_id)).data)

    @extend_schema(
        tags=TAGS,
        summary="Revoke an API key",
        description="The key stops working at once; its record stays listed, with `revoked_at`.",
        responses={200: ApiKeySerializer},
    )
    def delete(self, request: Request, key_id: int) -> Response:
        record = services.api_key_revoke(api_key=_key_or_404(key_id), actor=_actor(request))
        return Response(ApiKeySerializer(record).data)


class UserSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()
    service_account = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = (
            "id",
            "username",
            "role",
            "service_account",
            "is_active",
            "is_superuser",
            "last_login",
            "date_joined",
        )
        read_only_fields = fields

    @extend_schema_field({"type": "boolean", "description": "Whether API keys may be issued to the user."})
    def get_service_account(self, user: User) -> bool:
        return hasattr(user, "service_account")

    @extend_schema_field({"type": ["string", "null"], "description": "viewer, operator, admin or null"})
    def get_role(self, user: User) -> str | None:
        role = role_of(user)
        return role.label if role is not None else None


class UserRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLE_NAMES, allow_null=True, help_text="null removes every role.")


def _user_or_404(username: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"No user named {username!r}.")
    return user


class UserListView(ApiView):
    """Users and their roles."""

    permission_classes = [IsAdmin]
    pagination_class = Pagination

    @extend_schema(
        tags=TAGS,
        summary="List users",
        parameters=[
            *PAGE_PARAMETERS,
        ],
        responses={200: UserSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return self.paginated(
            User.objects.select_related("service_account").order_by("username"), UserSerializer
        )


class UserRoleView(ApiView):
    """Set a user's role."""

    permission_classes = [IsAdmin]

    @extend_schema(
        tags=TAGS,
        summary="Set a user's role",
        description="Every change is recorded with the admin who made it: a service account's in its history "
        "(and in the history of its keys), a person's in the admin's log of that user.",
        request=UserRoleSerializer,
        responses={
            200: UserSerializer,
            409: error_response("A service account that has since been given a password or made staff."),
        },
    )
    def put(self, request: Request, username: str) -> Response:
        user = _user_or_404(username)
        payload = UserRoleSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        value: Any = payload.validated_data["role"]
        role = Role.parse(value) if value else None
        services.user_role_set(user=user, role=role, actor=_actor(request))  # audited, whoever the user
        return Response(UserSerializer(user).data)


class AuditEntrySerializer(serializers.Serializer):
    """One audited change of a key or of the role of the service account that holds it."""

    id = serializers.IntegerField(help_text="The history record's id.")
    date = serializers.DateTimeField()
    subject = serializers.ChoiceField(
        choices=["key", "account"], help_text="What changed: the key or its account."
    )
    action = serializers.ChoiceField(choices=["created", "changed", "deleted"])
    user = serializers.CharField(
        allow_null=True, help_text="The account that made the change; null for none."
    )
    actor = serializers.CharField(help_text="Who made the change: a username, or the OS user for a command.")
    channel = serializers.CharField(
        allow_null=True, help_text="api, admin, command, migration or code (a direct call, e.g. a test)."
    )
    changes = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
        help_text="{field: [old value, new value]} against the record before; every field for a creation.",
    )

    _ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}
    _FIELDS = {
        "key": ("name", "prefix", "expires_at", "revoked_at", "created_by_name"),
        "account": ("role",),
    }

    def to_representation(self, instance: Any) -> dict[str, Any]:
        record = instance
        subject = "key" if record.instance_type is ApiKey else "account"
        previous = record.prev_record
        changes = {}
        for field in self._FIELDS[subject]:
            new = getattr(record, field)
            old = getattr(previous, field) if previous is not None else None
            if previous is None or old != new:
                changes[field] = [_plain(old), _plain(new)]
        user = record.history_user
        return {
            "id": record.history_id,
            "date": serializers.DateTimeField().to_representation(record.history_date),
            "subject": subject,
            "action": self._ACTIONS.get(record.history_type, "changed"),
            "user": user.get_username() if user is not None else None,
            "actor": record.history_actor,
            "channel": record.history_change_reason,
            "changes": changes if record.history_type != "-" else {},
        }


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return serializers.DateTimeField().to_representation(value)
    return value


class ApiKeyHistoryView(ApiView):
    """The audit trail of one key: its creation and revocation and the role changes of its account, newest
    first, each with who made it, when and through which channel."""

    permission_classes = [IsAdmin]
    pagination_class = Pagination
    serializer_class = AuditEntrySerializer  # type: ignore[assignment]  # DRF declares it None

    @extend_schema(
        tags=TAGS,
        summary="An API key's audit trail",
        parameters=[
            *PAGE_PARAMETERS,
        ],
        responses={200: AuditEntrySerializer(many=True)},
    )
    def get(self, request: Request, key_id: int) -> Response:
        return self.paginated(
            selectors.api_key_audit_trail(api_key=_key_or_404(key_id)), AuditEntrySerializer
        )
