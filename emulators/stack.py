"""LocalStack: every peer ops-status talks to, on loopback, in one object.

- a managed-identity endpoint of the App Service kind (``IDENTITY_ENDPOINT``/``IDENTITY_HEADER``),
- an ARM simulator that accepts only the token that endpoint issues for ARM,
- a Service Bus namespace over AMQP 1.0 holding the deployment template's entities
  (``emulators.topology``: the intake and polls queues, the events topic, the
  ``succeeded`` and ``failed`` subscriptions with the template's rules, lock durations,
  delivery counts and duplicate-detection windows), plus a local ``all`` subscription,
  and the template's trust boundary: a pipeline holds only ``pipeline_connection_string``,
  a Send rule on the intake queue, which the emulator refuses on every other entity (as
  Azure RBAC refuses a pipeline with Data Sender on the intake queue only).

``environment()`` returns the app settings that point the function app or the worker at
the stack, so the same code runs unmodified against it. Used by the demo, the e2e tests
and the playground (``python -m emulators up``, ``emulators.playground``).
"""

from __future__ import annotations

from types import TracebackType

from emulators.arm import ArmSimulator
from emulators.identity import IdentitySimulator
from emulators.servicebus import ServiceBusEmulator, SubscriptionConfig
from emulators.topology import PIPELINE_RULE, load_topology, local_config

__all__ = ["EVENTS_TOPIC", "INTAKE_QUEUE", "PIPELINE_RULE", "POLLS_QUEUE", "LocalStack"]

# The template's names (parameter defaults of infra/azuredeploy.json).
INTAKE_QUEUE = load_topology().intake_queue
POLLS_QUEUE = load_topology().polls_queue
EVENTS_TOPIC = load_topology().events_topic


class LocalStack:
    """The three local peers, started and stopped together."""

    def __init__(
        self,
        *,
        lock_duration: float | None = None,
        max_delivery_count: int | None = None,
        duplicate_detection_window: float | None = None,
        servicebus_port: int = 0,
        arm_port: int = 0,
        identity_port: int = 0,
        extra_subscriptions: dict[str, SubscriptionConfig] | None = None,
    ) -> None:
        """Entities as the template deploys them; ``lock_duration``,
        ``max_delivery_count`` and ``duplicate_detection_window`` (None: the template's)
        override the queues' values (the window also the topic's), for tests that need
        locks to expire in seconds. ``extra_subscriptions`` are added to the events topic.
        Port 0 picks a free port."""
        self.identity = IdentitySimulator(port=identity_port)
        self.arm = ArmSimulator(port=arm_port)
        self.servicebus = ServiceBusEmulator(
            config=local_config(
                lock_duration=lock_duration,
                max_delivery_count=max_delivery_count,
                duplicate_detection_window=duplicate_detection_window,
                extra_subscriptions=extra_subscriptions,
            ),
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
