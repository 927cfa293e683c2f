"""Admin endpoints for API keys and users: /api/v1/admin/keys/ and /api/v1/admin/users/."""

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
from fdm.api.roles import ROLE_NAMES, Role, role_of, role_set
from fdm.api.views import ApiView
from fdm.apikeys import selectors, services
from fdm.apikeys.models import ApiKey

TAGS = ["admin"]
MAX_ID = 2**63 - 1


class ApiKeySerializer(serializers.ModelSerializer):
    """A key as listed: never the secret itself."""

    user = serializers.CharField(source="user.username")
    role = serializers.SerializerMethodField()
    active = serializers.BooleanField(source="is_active")

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
            "last_used_at",
            "expires_at",
            "revoked_at",
        )
        read_only_fields: tuple[str, ...] = fields

    @extend_schema_field({"type": ["string", "null"], "description": "viewer, operator, admin or null"})
    def get_role(self, api_key: ApiKey) -> str | None:
        role = role_of(api_key.user)
        return role.label if role is not None else None


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
        help_text="The service user's name (created when missing), also the key's.",
    )
    role = serializers.ChoiceField(choices=ROLE_NAMES, help_text="The service user's role.")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, help_text="Empty: never expires.")


def _key_or_404(key_id: int) -> ApiKey:
    key = ApiKey.objects.select_related("user").filter(pk=key_id).first() if key_id <= MAX_ID else None
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
        description="Creates (or reuses) the service user `name` with `role`, as `manage.py create_api_key` does, "
        "and a new key for it. The key is in this response only.",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer},
    )
    def post(self, request: Request) -> Response:
        payload = ApiKeyCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        record, key = services.service_key_create(
            username=data["name"], role=Role.parse(data["role"]), expires_at=data.get("expires_at")
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
        record = services.api_key_revoke(api_key=_key_or_404(key_id))
        return Response(ApiKeySerializer(record).data)


class UserSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ("id", "username", "role", "is_active", "is_superuser", "last_login", "date_joined")
        read_only_fields = fields

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
        return self.paginated(User.objects.order_by("username"), UserSerializer)


class UserRoleView(ApiView):
    """Set a user's role."""

    permission_classes = [IsAdmin]

    @extend_schema(
        tags=TAGS, summary="Set a user's role", request=UserRoleSerializer, responses={200: UserSerializer}
    )
    def put(self, request: Request, username: str) -> Response:
        user = _user_or_404(username)
        payload = UserRoleSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        value: Any = payload.validated_data["role"]
        role_set(user=user, role=Role.parse(value) if value else None)
        return Response(UserSerializer(user).data)
