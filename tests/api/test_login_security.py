"""The admin's login: five wrong passwords lock a username out from that address for a while (django-axes),
and whoever may read decrypted data logs in with a TOTP code as well (django-otp). API keys are unaffected."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from fdm.api.client_ip import client_ip
from tests.two_factor import device_for, next_token

PASSWORD = "a long enough password"
LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff(db) -> User:
    """A staff member who may read no decrypted data: the second factor is optional for them."""
    return User.objects.create_user("staff", password=PASSWORD, is_staff=True)


@pytest.fixture
def decryptor(db) -> User:
    """A staff member who may read decrypted data: the second factor is required."""
    user = User.objects.create_user("decryptor", password=PASSWORD, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="read_decrypted"))
    return user


def _log_in(client: Client, username: str, password: str = PASSWORD, token: str = "", **extra):
    return client.post(LOGIN, {"username": username, "password": password, "otp_token": token}, **extra)


def _logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


# --- lockout ---


def test_the_sixth_attempt_is_refused_after_five_wrong_passwords_even_when_right(client, staff):
    statuses = [_log_in(client, "staff", "wrong password").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]  # the form with its error, then the lockout

    response = _log_in(client, "staff")

    assert response.status_code == 429
    assert not _logged_in(response)
    assert client.get("/admin/").status_code == 302  # still sent to the login page


def test_four_wrong_passwords_do_not_lock_out(client, staff):
    for _ in range(4):
        _log_in(client, "staff", "wrong password")

    assert _logged_in(_log_in(client, "staff"))


def test_the_lockout_holds_one_username_from_one_address(client, staff, db):
    User.objects.create_user("other", password=PASSWORD, is_staff=True)
    for _ in range(5):
        _log_in(client, "staff", "wrong password")

    assert _logged_in(_log_in(Client(), "other"))  # another username, same address
    assert _logged_in(_log_in(Client(), "staff", REMOTE_ADDR="10.0.0.7"))  # same username, elsewhere


def test_the_limit_and_the_cool_off_come_from_the_environment(settings, client, staff):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        _log_in(client, "staff", "wrong password")

    assert _log_in(client, "staff").status_code == 429


def test_the_lockout_ends_after_the_cool_off(client, staff, settings):
    from datetime import timedelta

    for _ in range(5):
        _log_in(client, "staff", "wrong password")
    settings.AXES_COOLOFF_TIME = timedelta(seconds=0)

    assert _logged_in(_log_in(client, "staff"))


def test_api_keys_are_not_passwords_and_are_never_locked_out(client, staff, api_key):
    key = api_key("viewer")
    for _ in range(10):
        assert client.get("/api/v1/tables/", HTTP_AUTHORIZATION="Api-Key wrong").status_code == 401

    assert client.get("/api/v1/tables/", HTTP_AUTHORIZATION=f"Api-Key {key}").status_code == 200


class _Request:
    def __init__(self, remote: str, forwarded: str | None = None):
        self.META = {"REMOTE_ADDR": remote}
        if forwarded is not None:
            self.META["HTTP_X_FORWARDED_FOR"] = forwarded


def test_without_a_trusted_proxy_the_client_is_the_connection(settings):
    settings.FDM_TRUSTED_PROXY_COUNT = 0

    assert client_ip(_Request("203.0.113.9", "198.51.100.1")) == "203.0.113.9"  # a forged header is ignored


def test_behind_a_trusted_proxy_the_client_is_what_the_proxy_appended(settings):
    settings.FDM_TRUSTED_PROXY_COUNT = 1

    # The client wrote 198.51.100.1 itself; the proxy appended the address it saw.
    assert client_ip(_Request("10.0.0.2", "198.51.100.1, 203.0.113.9")) == "203.0.113.9"
    assert client_ip(_Request("10.0.0.2")) == "10.0.0.2"


# --- second factor ---


def test_a_user_who_may_read_decrypted_data_cannot_log_in_without_a_code(client, decryptor):
    device_for(decryptor)

    response = _log_in(client, "decryptor")

    assert response.status_code == 200
    assert "two-factor code" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_a_wrong_code_is_refused(client, decryptor):
    device = device_for(decryptor)
    wrong = f"{(int(next_token(device)) + 1) % 1_000_000:06d}"

    response = _log_in(client, "decryptor", token=wrong)

    assert response.status_code == 200 and "wrong" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_with_a_valid_code_they_reach_the_admin(client, decryptor):
    device = device_for(decryptor)

    assert _logged_in(_log_in(client, "decryptor", token=next_token(device)))
    assert client.get("/admin/").status_code == 200


def test_a_code_is_accepted_once(client, decryptor):
    device = device_for(decryptor)
    token = next_token(device)
    assert _logged_in(_log_in(client, "decryptor", token=token))

    assert not _logged_in(_log_in(Client(), "decryptor", token=token))


def test_a_superuser_needs_the_code_too(client, db):
    admin = User.objects.create_superuser("root", password=PASSWORD)
    device = device_for(admin)

    assert not _logged_in(_log_in(client, "root"))
    assert _logged_in(_log_in(client, "root", token=next_token(device)))


def test_without_a_device_a_user_who_needs_one_is_told_how_to_get_one(client, decryptor):
    response = _log_in(client, "decryptor", token="123456")

    assert response.status_code == 200
    assert "manage.py totp_device decryptor" in response.content.decode()


def test_a_session_without_the_second_factor_does_not_reach_admin_pages(client, decryptor):
    from django.contrib.auth import login
    from django.test import RequestFactory

    device_for(decryptor)
    # A session opened by password alone: the login form opens none such, but one from before 2FA might exist.
    request = RequestFactory().get("/")
    request.session = client.session
    login(request, decryptor, backend="django.contrib.auth.backends.ModelBackend")
    request.session.save()
    client.cookies["sessionid"] = request.session.session_key

    assert client.get("/admin/").status_code == 302


def test_staff_who_may_not_decrypt_log_in_without_a_code(client, staff):
    assert _logged_in(_log_in(client, "staff"))
    assert client.get("/admin/").status_code == 200


def test_staff_who_enrolled_a_device_use_it(client, staff):
    device = device_for(staff)

    assert not _logged_in(_log_in(client, "staff"))
    assert _logged_in(_log_in(client, "staff", token=next_token(device)))


def test_the_totp_device_command_prints_an_otpauth_uri_and_keeps_the_device(decryptor):
    out = io.StringIO()
    call_command("totp_device", "decryptor", stdout=out)
    again = io.StringIO()
    call_command("totp_device", "decryptor", "--no-qr", stdout=again)

    device = TOTPDevice.objects.get(user=decryptor)
    assert "otpauth://totp/" in out.getvalue() and "secret=" in out.getvalue()
    assert device.config_url in out.getvalue() and device.config_url in again.getvalue()
    assert out.getvalue().startswith("New") and again.getvalue().startswith("Existing")


def test_the_totp_device_command_replaces_a_lost_device(decryptor):
    first = device_for(decryptor)

    call_command("totp_device", "decryptor", "--reset", "--no-qr", stdout=io.StringIO())

    [device] = TOTPDevice.objects.filter(user=decryptor)
    assert device.pk != first.pk and device.key != first.key


def test_the_totp_device_command_refuses_an_unknown_user(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="nobody"):
        call_command("totp_device", "nobody", stdout=io.StringIO())


def test_an_api_session_without_a_needed_second_factor_counts_as_no_login(client, staff):
    from fdm.api.roles import Role, role_set

    role_set(user=staff, role=Role.VIEWER)
    assert _logged_in(_log_in(client, "staff"))  # no code needed: staff may not decrypt
    assert client.get("/api/v1/tables/").status_code == 200
    staff.user_permissions.add(Permission.objects.get(codename="read_decrypted"))

    assert client.get("/api/v1/tables/").status_code in (401, 403)
    assert client.get("/admin/").status_code == 302
