from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    name = "fdm.apikeys"
    label = "apikeys"
    verbose_name = "API keys"

    def ready(self) -> None:
        from fdm.api.errors import ApiError, register_error
        from fdm.apikeys.services import NotAServiceAccount

        def not_a_service_account(error: NotAServiceAccount) -> ApiError:
            # 409: the request is well formed, but the account it names may not hold keys.
            return ApiError(
                str(error)[0].upper() + str(error)[1:] + ".",
                code="not_a_service_account",
                status_code=409,
                details=[("name", f"{error.user.get_username()!r} {error.why}")],
            )

        register_error(NotAServiceAccount, not_a_service_account)
