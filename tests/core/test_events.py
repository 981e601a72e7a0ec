"""The event bus: typed events delivered once to each subscriber, in this process and, over a real Redis or
RabbitMQ, in others; fields marked local never leave the process."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import ClassVar

import pytest

from linewatch.core.events import Event, EventBus, InspectionStored, JobChanged, ModelActivated, local


def test_subscribers_get_their_types_once_and_a_failing_one_stops_nobody():
    bus = EventBus()
    jobs, everything, calls = [], [], []

    def broken(event):
        calls.append(event)
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken)
    bus.subscribe(jobs.append, JobChanged)
    stop = bus.subscribe(everything.append)
    job = JobChanged(job={"id": 1, "status": "running"})
    model = ModelActivated(station="cam1", model_id=3)
    bus.publish(job)
    bus.publish(model)
    assert jobs == [job] and everything == [job, model] and len(calls) == 2
    stop()
    bus.publish(job)
    assert everything == [job, model] and jobs == [job, job]


def test_local_fields_stay_out_of_messages():
    row = object()
    event = InspectionStored(inspection={"id": 7, "verdict": "good"}, stored=(row, "cam1", None))
    message = event.message()
    assert message == {"type": "inspection", "inspection": {"id": 7, "verdict": "good"}}
    back = Event.from_message(message)
    assert isinstance(back, InspectionStored) and back.inspection == event.inspection and back.stored is None
    with pytest.raises(ValueError, match="unknown event type"):
        Event.from_message({"type": "no-such-event"})


def test_an_engine_adds_its_own_event_type():
    @dataclass(frozen=True, kw_only=True)
    class MachineAlert(Event):
        type: ClassVar[str] = "test_machine_alert"
        machine: str
        score: float
        raw: object = local()

    back = Event.from_message(MachineAlert(machine="press-1", score=0.9, raw=[1, 2]).message())
    assert isinstance(back, MachineAlert) and back.machine == "press-1" and back.raw is None

    with pytest.raises(ValueError, match="declared twice"):

        @dataclass(frozen=True, kw_only=True)
        class Again(Event):
            type: ClassVar[str] = "test_machine_alert"


def test_remote_events_skip_local_only_subscribers():
    bus = EventBus()
    counted, shown = [], []
    bus.subscribe(counted.append, local_only=True)
    bus.subscribe(shown.append)
    bus.receive({"origin": "another-process", "event": {"type": "job", "job": {"id": 2}}})
    bus.receive({"origin": bus.origin, "event": {"type": "job", "job": {"id": 3}}})  # our own, back from the broker
    bus.receive({"origin": "another-process", "event": {"type": "nonsense"}})
    assert counted == [] and [e.job["id"] for e in shown] == [2] and bus.received == 1


def _reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


BROKERS = [
    pytest.param(
        "redis://127.0.0.1:6379/0",
        marks=pytest.mark.skipif(not _reachable(6379), reason="no Redis on 127.0.0.1:6379"),
        id="redis",
    ),
    pytest.param(
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        marks=pytest.mark.skipif(not _reachable(5672), reason="no RabbitMQ on 127.0.0.1:5672"),
        id="rabbitmq",
    ),
]


def _wait(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.mark.parametrize("url", BROKERS)
def test_events_reach_other_processes_once(url):
    from linewatch.core.transports import make_transport

    channel = f"test-{uuid.uuid4().hex[:8]}"
    buses = [EventBus(make_transport(url, channel)) for _ in range(2)]
    got: list[list] = [[], []]
    lock = threading.Lock()
    for bus, sink in zip(buses, got, strict=True):
        bus.transport.start(bus.receive)
        bus.subscribe(lambda e, sink=sink: (lock.acquire(), sink.append(e), lock.release()))
    try:
        sent = [JobChanged(job={"id": i, "progress": i / 10}) for i in range(20)]
        for event in sent:
            buses[0].publish(event)
        assert _wait(lambda: len(got[1]) == len(sent)), got[1]
        time.sleep(0.3)  # nothing arrives twice
        assert [e.job for e in got[1]] == [e.job for e in sent]
        assert got[0] == sent  # the publisher's own subscribers, directly, once
        buses[1].publish(ModelActivated(station="cam1", model_id=5, previous_model_id=4))
        assert _wait(lambda: len(got[0]) == len(sent) + 1)
        assert got[0][-1] == ModelActivated(station="cam1", model_id=5, previous_model_id=4)
    finally:
        for bus in buses:
            bus.close()
