"""Carrying events between processes over the brokers linewatch already uses for jobs: Redis pub/sub or a
RabbitMQ fanout exchange. Delivery is at most once and live only (a process that is down misses what was
published meanwhile; the database holds the state, and a process reads it when it starts)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable

from linewatch.errors import LinewatchError

log = logging.getLogger("linewatch.events")
RECONNECT_S = 1.0


class TransportUnavailable(LinewatchError):
    """The event broker cannot be reached."""


def make_transport(url: str, channel: str):
    """A transport for ``redis://`` or ``amqp://`` URLs; ``channel`` names the installation's events."""
    if url.startswith(("redis://", "rediss://")):
        return RedisTransport(url, channel)
    if url.startswith(("amqp://", "amqps://")):
        return AmqpTransport(url, channel)
    raise LinewatchError(f"events URL must be redis://... or amqp://..., got {url.split('://')[0]}://")


class RedisTransport:
    def __init__(self, url: str, channel: str):
        import redis

        self._redis = redis
        self.channel = f"{channel}.events"
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=10)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _subscribe(self):
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.channel)
        pubsub.get_message(timeout=5)  # the confirmation: events published from now on reach us
        return pubsub

    def start(self, deliver: Callable[[dict], None]) -> None:
        try:
            pubsub = self._subscribe()
        except self._redis.RedisError as e:
            raise TransportUnavailable(f"cannot subscribe to events on Redis: {e}") from None
        self._thread = threading.Thread(target=self._loop, args=(pubsub, deliver), name="linewatch-events", daemon=True)
        self._thread.start()

    def _loop(self, pubsub, deliver) -> None:
        while not self._stop.is_set():
            try:
                msg = pubsub.get_message(timeout=0.5)
                if msg and msg.get("type") == "message":
                    deliver(json.loads(msg["data"]))
            except self._redis.RedisError as e:
                log.warning("event subscription lost (%s); reconnecting", e)
                time.sleep(RECONNECT_S)
                try:
                    pubsub = self._subscribe()
                except self._redis.RedisError:
                    continue
            except (ValueError, TypeError) as e:
                log.warning("ignored a malformed event message: %s", e)
        pubsub.close()

    def send(self, message: dict) -> None:
        self.client.publish(self.channel, json.dumps(message, default=str))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.client.close()


class AmqpTransport:
    """A fanout exchange; each process binds its own exclusive, auto-deleted queue."""

    def __init__(self, url: str, channel: str):
        import pika

        self._pika = pika
        self.params = pika.URLParameters(url)
        self.params.socket_timeout = 5
        self.params.blocked_connection_timeout = 10
        self.exchange = f"{channel}.events"
        self._send_lock = threading.Lock()
        self._send_conn = None
        self._send_channel = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _consumer(self):
        conn = self._pika.BlockingConnection(self.params)
        ch = conn.channel()
        ch.exchange_declare(self.exchange, exchange_type="fanout", durable=False)
        queue = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        ch.queue_bind(queue, self.exchange)
        return conn, ch, queue

    def start(self, deliver: Callable[[dict], None]) -> None:
        try:
            first = self._consumer()
        except self._pika.exceptions.AMQPError as e:
            raise TransportUnavailable(f"cannot subscribe to events on RabbitMQ: {e!r}") from None
        self._thread = threading.Thread(target=self._loop, args=(first, deliver), name="linewatch-events", daemon=True)
        self._thread.start()

    def _loop(self, consumer, deliver) -> None:
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._consumer()
                conn, ch, queue = consumer
                for _method, _props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=0.5):
                    if self._stop.is_set():
                        break
                    if body is None:
                        continue
                    try:
                        deliver(json.loads(body))
                    except (ValueError, TypeError) as e:
                        log.warning("ignored a malformed event message: %s", e)
                ch.cancel()
                conn.close()
                return
            except self._pika.exceptions.AMQPError as e:
                log.warning("event subscription lost (%r); reconnecting", e)
                consumer = None
                time.sleep(RECONNECT_S)

    def send(self, message: dict) -> None:
        body = json.dumps(message, default=str).encode()
        with self._send_lock:
            for attempt in (1, 2):  # an idle publishing connection may have been closed by the broker
                try:
                    if self._send_channel is None or self._send_channel.is_closed:
                        self._send_conn = self._pika.BlockingConnection(self.params)
                        self._send_channel = self._send_conn.channel()
                        self._send_channel.exchange_declare(self.exchange, exchange_type="fanout", durable=False)
                    self._send_channel.basic_publish(self.exchange, "", body)
                    return
                except self._pika.exceptions.AMQPError:
                    self._send_channel = None
                    if attempt == 2:
                        raise

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
        with self._send_lock:
            if self._send_conn is not None and self._send_conn.is_open:
                with contextlib.suppress(self._pika.exceptions.AMQPError):
                    self._send_conn.close()
