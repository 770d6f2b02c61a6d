"""The notifications service's wiring: settings, tables, consumers, senders, reminders and HTTP."""

from pathlib import Path

from lastline_notifications import consumers, inbox_api, webhook_api
from lastline_notifications.deliveries import DeliveryStore, RetryPolicy, deliveries_channel
from lastline_notifications.inbox import InboxStore
from lastline_notifications.mail import Mailer, Renderer
from lastline_notifications.messages import EmailBuilder, LinkSettings
from lastline_notifications.projections import Projections
from lastline_notifications.reminders import reminder_loop
from lastline_notifications.senders import Senders
from lastline_notifications.subscriptions import SubscriptionStore
from lastline_notifications.tables import NotificationsTables
from lastline_notifications.webhooks import WebhookSender
from lastline_shared.clock import network_today
from lastline_shared.contracts.topics import NOTIFICATIONS
from lastline_shared.db import asyncpg_dsn, new_metadata
from lastline_shared.runtime import ServiceRuntime
from lastline_shared.settings import NotificationsSettings
from lastline_shared.wakeup import Wakeup

settings = NotificationsSettings()
metadata = new_metadata()
tables = NotificationsTables(metadata)
runtime = ServiceRuntime(settings, metadata, migrations_dir=Path(__file__).parent / "migrations")
runtime.publishes(NOTIFICATIONS)
schema = settings.db_schema
dsn = asyncpg_dsn(settings.database_url)

projections = Projections(tables)
inbox = InboxStore(tables, schema)
deliveries = DeliveryStore(
    tables,
    inbox,
    runtime.emit,
    schema=schema,
    policy=RetryPolicy(
        base_s=settings.retry_base_s,
        max_s=settings.retry_max_s,
        hold_s=settings.hold_unknown_s,
        max_attempts={"email": settings.email_max_attempts, "webhook": settings.webhook_max_attempts},
    ),
)
subscriptions = SubscriptionStore(tables)
consumers.register(
    runtime,
    consumers.Handlers(projections, deliveries, subscriptions, oncall_emails=settings.oncall_emails),
)

senders = Senders(
    runtime.sessions,
    deliveries,
    emails=EmailBuilder(
        projections,
        Renderer(),
        LinkSettings(
            auth_jwt_secret=settings.auth_jwt_secret,
            matching_public_url=settings.matching_public_url,
            intake_public_url=settings.intake_public_url,
            packet_link_ttl_hours=settings.packet_link_ttl_hours,
        ),
        sender=settings.mail_from,
    ),
    mailer_factory=lambda: Mailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=settings.smtp_security,
        username=settings.smtp_username,
        password=settings.smtp_password,
        timeout_s=settings.smtp_timeout_s,
    ),
    webhooks=WebhookSender(timeout_s=settings.webhook_timeout_s),
    subscriptions=subscriptions,
    wakeup=Wakeup(dsn, deliveries_channel(schema), poll_interval_s=1.0),
    lease_s=settings.delivery_lease_s,
    max_endpoints=settings.webhook_max_endpoints,
)
for name, task in senders.tasks(settings.email_senders):
    runtime.add_task(name, task)
runtime.add_task(
    "reminders",
    reminder_loop(
        runtime.sessions,
        tables,
        deliveries,
        today=network_today(settings.network_timezone),
        days_before=settings.reminder_days,
        every_s=settings.reminder_check_every_s,
    ),
)

broadcast = inbox_api.Broadcast(dsn, inbox.channel)
runtime.add_task("inbox-listener", broadcast.listen)
runtime.routers.append(inbox_api.build_router(sessions=runtime.sessions, store=inbox, broadcast=broadcast))
runtime.routers.append(
    webhook_api.build_router(sessions=runtime.sessions, subscriptions=subscriptions, deliveries=deliveries)
)
asyncapi = runtime.asyncapi  # for `faststream docs gen lastline_notifications.app:asyncapi`
