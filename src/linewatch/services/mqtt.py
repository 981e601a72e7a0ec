"""Readings from the plant's MQTT broker (paho-mqtt), and optionally through NATS JetStream.

The service subscribes to ``<prefix>/+/+`` (``<prefix>/<line>/<machine>``) with QoS 1 and a persistent session
(``clean_session=False`` under a fixed client id): the broker keeps the subscription and queues QoS 1 messages
while the service is down or restarting, and sends them when it is back. Messages are acknowledged by hand, only
after their readings are committed: a service killed between receiving and storing gets them again.

Brokers bound what they keep for a session (Mosquitto: ``max_queued_messages``, default 1,000 messages, and
``max_inflight_messages``, default 20): publish batches (the payload's column-wise form), not one reading per
message, and raise those limits for long outages (README, "Machines").

With ``readings_bus_url`` (NATS JetStream), MQTT messages are put in a durable stream first (the MQTT message is
acknowledged once JetStream has it) and the ingesters of every service instance take them from one shared
durable consumer: a message is stored by one instance, and redelivered if that instance dies before storing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from urllib.parse import unquote, urlsplit

from linewatch.errors import LinewatchError
from linewatch.services.ingest import Ingester, Message

log = logging.getLogger("linewatch.mqtt")


def jetstream_names(queue_name: str) -> tuple[str, str, str]:
    """(stream, subject, durable consumer) of an installation (``queue_name``): instances sharing it share them."""
    safe = queue_name.replace(".", "_")
    return f"{safe}_readings", f"{queue_name}.readings", f"{safe}-ingest"


def broker_address(url: str) -> tuple[str, int, bool, str | None, str | None]:
    """(host, port, tls, user, password) of an ``mqtt://`` or ``mqtts://`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise LinewatchError(f"mqtt_url must be mqtt://host:1883 or mqtts://host:8883, not {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise LinewatchError(f"mqtt_url has an invalid port: {url!r}") from None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname or "127.0.0.1", port, tls, user, password


class MqttSource:
    """Subscribes and hands each message to ``deliver(topic, payload, ack)``; reconnects by itself."""

    def __init__(self, url: str, prefix: str, client_id: str, deliver, states: bool = False):
        import paho.mqtt.client as mqtt

        self.host, self.port, tls, user, password = broker_address(url)
        self.topic = f"{prefix.rstrip('/')}/+/+"
        # machine state messages for the digital twin, on the same connection and session
        self.state_topic = f"{prefix.rstrip('/')}/+/+/state" if states else None
        self.deliver = deliver
        self.connected = threading.Event()
        self.received = 0
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if user:
            client.username_pw_set(user, password)
        if tls:
            client.tls_set()
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker %s:%s refused the connection: %s", self.host, self.port, reason_code)
            return
        client.subscribe([(t, 1) for t in (self.topic, self.state_topic) if t])
        self.connected.set()
        log.info("MQTT: subscribed to %s on %s:%s", self.topic, self.host, self.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self.connected.clear()
        if reason_code != 0:
            log.warning("MQTT broker %s:%s lost (%s); reconnecting", self.host, self.port, reason_code)

    def _on_message(self, client, userdata, msg) -> None:
        self.received += 1
        mid, qos = msg.mid, msg.qos

        def ack() -> None:
            if qos > 0:
                client.ack(mid, qos)

        self.deliver(msg.topic, msg.payload, ack)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class NatsBridge:
    """A JetStream stream between the MQTT subscriber and the ingester (an asyncio loop in its own thread)."""

    def __init__(self, url: str, ingester: Ingester, queue_name: str = "linewatch", fetch: int = 200):
        self.url = url
        self.stream, self.subject, self.durable = jetstream_names(queue_name)
        self.ingester = ingester
        self.fetch = fetch
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="linewatch-nats", daemon=True)
        self.js = None
        self.nc = None

    def start(self, wait: float = 10.0) -> None:
        self._thread.start()
        if not self.ready.wait(wait):
            log.warning("NATS JetStream at %s not reachable yet: %s", self.url, self.error or "still connecting")

    def stop(self) -> None:
        self._stop.set()
        if self.loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._close(), self.loop)
            with contextlib.suppress(Exception):
                fut.result(5)
        self._thread.join(5)

    async def _close(self) -> None:
        if self.nc is not None:
            await self.nc.drain()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

        while not self._stop.is_set():
            try:
                self.nc = await nats.connect(self.url, max_reconnect_attempts=-1, connect_timeout=3)
                self.js = self.nc.jetstream()
                try:
                    await self.js.add_stream(StreamConfig(name=self.stream, subjects=[self.subject]))
                except Exception:  # it exists, perhaps with other limits: use it as it is
                    await self.js.stream_info(self.stream)
                sub = await self.js.pull_subscribe(
                    self.subject,
                    durable=self.durable,
                    config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=60),
                )
                break
            except Exception as e:
                self.error = f"{type(e).__name__}: {e}"
                await asyncio.sleep(2)
        else:
            return
        self.ready.set()
        import nats.errors

        while not self._stop.is_set():
            try:
                msgs = await sub.fetch(self.fetch, timeout=0.5)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except Exception as e:
                if self._stop.is_set():
                    return
                log.warning("NATS fetch failed: %s", e)
                await asyncio.sleep(1)
                continue
            for m in msgs:
                topic = (m.headers or {}).get("topic", "")
                message = Message("nats", topic, m.data, ack=self._acker(m))
                await asyncio.to_thread(self.ingester.submit, message)

    def _acker(self, m):
        def ack() -> None:
            asyncio.run_coroutine_threadsafe(m.ack(), self.loop)

        return ack

    def publish(self, topic: str, payload: bytes, then) -> None:
        """Put one MQTT message in the stream; ``then()`` once JetStream has it (retried until it does)."""

        async def put() -> None:
            while not self._stop.is_set():
                try:
                    if self.js is None:
                        raise ConnectionError("not connected")
                    await self.js.publish(self.subject, payload, headers={"topic": topic})
                    then()
                    return
                except Exception as e:
                    log.warning("NATS publish failed, retrying: %s", e)
                    await asyncio.sleep(1)

        asyncio.run_coroutine_threadsafe(put(), self.loop)


class ReadingSources:
    """The service's readings inputs, from settings: MQTT (directly, or through NATS JetStream). With ``states``
    (the twin's inbox: ``submit(topic, payload, ack)``), machine state messages on ``<prefix>/<line>/<machine>/state``
    go to it, directly (not through NATS), acknowledged once their events are stored."""

    def __init__(self, settings, ingester: Ingester, states=None):
        self.settings = settings
        self.ingester = ingester
        self.states = states
        self.mqtt: MqttSource | None = None
        self.nats: NatsBridge | None = None

    def start(self) -> None:
        s = self.settings
        if s.readings_bus_url:
            self.nats = NatsBridge(s.readings_bus_url, self.ingester, s.queue_name)
            self.nats.start()
        if s.mqtt_url:
            if self.nats is not None:
                bridge = self.nats

                def readings(topic, payload, ack):
                    bridge.publish(topic, payload, ack)
            else:

                def readings(topic, payload, ack):
                    self.ingester.submit(Message("mqtt", topic, payload, ack=ack))

            states = self.states

            def deliver(topic, payload, ack):
                if states is not None and topic.endswith("/state") and topic.count("/") >= 3:
                    states.submit(topic, payload, ack)
                else:
                    readings(topic, payload, ack)

            self.mqtt = MqttSource(s.mqtt_url, s.mqtt_topic_prefix, s.mqtt_client_id, deliver, states is not None)
            self.mqtt.start()

    def stop(self) -> None:
        if self.mqtt is not None:
            self.mqtt.stop()
        if self.nats is not None:
            self.nats.stop()

    def status(self) -> dict:
        return {
            "mqtt": None
            if self.mqtt is None
            else {"broker": f"{self.mqtt.host}:{self.mqtt.port}", "connected": self.mqtt.connected.is_set()},
            "nats": None if self.nats is None else {"url": self.nats.url, "connected": self.nats.ready.is_set()},
        }
