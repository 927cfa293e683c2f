from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "fdm.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from fdm.admin_site import admin_section_assign

        admin_section_assign("Configuration", "notifications.channel")
        admin_section_assign("Runs", "notifications.incident")
        admin_section_assign("Audit", "notifications.delivery")
