"""LocalStack: every peer ops-status talks to, on loopback, in one object.

- a managed-identity endpoint of the App Service kind (``IDENTITY_ENDPOINT``/``IDENTITY_HEADER``),
- an ARM simulator that accepts only the token that endpoint issues for ARM,
- a Service Bus namespace over AMQP 1.0 with the intake and polls queues and the events
  topic, configured as the deployment template configures them (duplicate detection on),
  and the template's trust boundary: a pipeline holds only ``pipeline_connection_string``,
  a Send rule on the intake queue, which the emulator refuses on every other entity (as
  Azure RBAC refuses a pipeline with Data Sender on the intake queue only).

``environment()`` returns the app settings that point the function app or the worker at
the stack, so the same code runs unmodified against it. Used by the demo, the e2e tests
and ``python -m emulators stack`` (for ``func start``).
"""

from __future__ import annotations

from types import TracebackType

from emulators.arm import ArmSimulator
from emulators.identity import IdentitySimulator
from emulators.servicebus import (
    AuthorizationRule,
    QueueConfig,
    ServiceBusEmulator,
    SubscriptionConfig,
    TopicConfig,
)

__all__ = ["EVENTS_TOPIC", "INTAKE_QUEUE", "PIPELINE_RULE", "POLLS_QUEUE", "LocalStack"]

INTAKE_QUEUE = "ops-status-intake"
POLLS_QUEUE = "ops-status-polls"
EVENTS_TOPIC = "ops-status-events"
PIPELINE_RULE = "pipeline-send"
# A local emulator key, not a secret: it opens nothing but this process's emulator.
_PIPELINE_KEY = "cGlwZWxpbmUtc2VuZC1sb2NhbC1lbXVsYXRvci1rZXk="


class LocalStack:
    """The three local peers, started and stopped together."""

    def __init__(
        self,
        *,
        lock_duration: float = 30.0,
        max_delivery_count: int = 10,
        duplicate_detection_window: float = 600.0,
        servicebus_port: int = 0,
        arm_port: int = 0,
        identity_port: int = 0,
        extra_subscriptions: dict[str, SubscriptionConfig] | None = None,
    ) -> None:
        self.identity = IdentitySimulator(port=identity_port)
        self.arm = ArmSimulator(port=arm_port)
        subscriptions = {
            "all": SubscriptionConfig(),
            "failed": SubscriptionConfig(filter={"status": "Failed"}),
            **(extra_subscriptions or {}),
        }
        self.servicebus = ServiceBusEmulator(
            queues={
                name: QueueConfig(
                    lock_duration=lock_duration,
                    max_delivery_count=max_delivery_count,
                    duplicate_detection_window=duplicate_detection_window,
                    authorization_rules=rules,
                )
                for name, rules in (
                    (INTAKE_QUEUE, [AuthorizationRule(PIPELINE_RULE, _PIPELINE_KEY, ["Send"])]),
                    (POLLS_QUEUE, []),
                )
            },
            topics={
                EVENTS_TOPIC: TopicConfig(
                    subscriptions=subscriptions,
                    duplicate_detection_window=duplicate_detection_window,
                )
            },
            port=servicebus_port,
        )

    def start(self) -> LocalStack:
        self.identity.start()
        self.arm.start()
        self.arm.expected_token = self.identity.token_for(self.arm.endpoint + "/.default")
        self.servicebus.start()
        return self

    def stop(self) -> None:
        for peer in (self.servicebus, self.arm, self.identity):
            peer.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pipeline_connection_string(self) -> str:
        """What a pipeline is given: Send on the intake queue, nothing else."""
        return self.servicebus.connection_string_for(PIPELINE_RULE, entity=INTAKE_QUEUE)

    def environment(self, *, identity_based: bool = True, **overrides: str) -> dict[str, str]:
        """App settings (and identity variables) for a function app or worker on this stack.

        ``identity_based`` uses ``ServiceBusConnection__fullyQualifiedNamespace`` and the
        managed identity for Service Bus too (as in Azure); otherwise the emulator's
        connection string.
        """
        settings = {
            "OPS_STATUS_INTAKE_QUEUE": INTAKE_QUEUE,
            "OPS_STATUS_POLLS_QUEUE": POLLS_QUEUE,
            "OPS_STATUS_EVENTS_TOPIC": EVENTS_TOPIC,
            "OPS_STATUS_ARM_ENDPOINT": self.arm.endpoint,
            "OPS_STATUS_CREDENTIAL": "managedidentity",
            **self.identity.environ(),
        }
        if identity_based:
            settings["ServiceBusConnection__fullyQualifiedNamespace"] = (
                self.servicebus.fully_qualified_namespace
            )
        else:
            settings["ServiceBusConnection"] = self.servicebus.connection_string
        settings.update(overrides)
        return settings
