"""Readings over MQTT for the dashboard's end-to-end story, as a plant gateway would publish them (paho-mqtt, QoS 1,
the payload of ``linewatch.services.payloads``), on ``<topic>`` = ``<prefix>/<line>/<machine>``.

    python web/e2e/mqtt_publish.py --url mqtt://127.0.0.1:1883 check
    ... --topic P/L/M history --sensors oil_temp=70:0.5,pressure=3:0.05 --seconds 1200
    ... --topic P/L/M live --sensors oil_temp=70:0.5 --seconds 20 [--shift oil_temp=30]
    ... --topic P/L/M send '{"sensor": "oil_temp", "value": 250}'

``check`` exits 0 when the broker takes a connection, 3 (with the reason) when it does not. ``history`` publishes
the last ``--seconds`` of normal readings (one a second per sensor, seeded noise) in column-wise batches ending
now; ``live`` publishes one time step a second, stamped now, for ``--seconds`` (``--shift`` moves a sensor's mean:
an anomalous burst); ``send`` publishes one JSON payload as given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

import numpy as np


def connect(url: str):
    import paho.mqtt.client as mqtt

    from linewatch.services.mqtt import broker_address

    host, port, tls, user, password = broker_address(url)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"lw-e2e-pub-{uuid.uuid4().hex[:8]}")
    if user:
        c.username_pw_set(user, password)
    if tls:
        c.tls_set()
    c.connect(host, port, keepalive=30)
    c.loop_start()
    return c


def sensors(spec: str) -> dict[str, tuple[float, float]]:
    out = {}
    for part in spec.split(","):
        name, _, ms = part.partition("=")
        mean, _, std = ms.partition(":")
        out[name.strip()] = (float(mean), float(std or 0))
    return out


def publish(c, topic: str, payload: object) -> None:
    info = c.publish(topic, json.dumps(payload), qos=1)
    info.wait_for_publish(timeout=10)
    if not info.is_published():
        sys.exit(f"not published to {topic}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="mqtt://127.0.0.1:1883")
    ap.add_argument("--topic", default="")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seed", type=int, default=0, help="of the readings' noise")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check")
    h = sub.add_parser("history", parents=[common])
    h.add_argument("--sensors", required=True)
    h.add_argument("--seconds", type=int, default=1200)
    lv = sub.add_parser("live", parents=[common])
    lv.add_argument("--sensors", required=True)
    lv.add_argument("--seconds", type=int, default=20)
    lv.add_argument("--shift", default="")
    s = sub.add_parser("send")
    s.add_argument("payload")
    args = ap.parse_args()

    try:
        c = connect(args.url)
    except OSError as e:
        print(e, file=sys.stderr)
        sys.exit(3)
    rng = np.random.default_rng(getattr(args, "seed", 0))
    try:
        if args.cmd == "check":
            return
        if not args.topic:
            sys.exit("--topic is required")
        if args.cmd == "send":
            publish(c, args.topic, json.loads(args.payload))
        elif args.cmd == "history":
            sens = sensors(args.sensors)
            end = int(time.time()) - 1
            times = np.arange(end - args.seconds, end, dtype=float)
            for i in range(0, len(times), 500):  # batches: the broker queues messages, not readings
                t = times[i : i + 500]
                values = {n: np.round(m + rng.normal(0, sd, len(t)), 4).tolist() for n, (m, sd) in sens.items()}
                publish(c, args.topic, {"time": t.tolist(), "values": values})
        elif args.cmd == "live":
            sens = sensors(args.sensors)
            shift = {k: v[0] for k, v in sensors(args.shift).items()} if args.shift else {}
            for _ in range(args.seconds):
                values = {n: round(float(m + shift.get(n, 0) + rng.normal(0, sd)), 4) for n, (m, sd) in sens.items()}
                publish(c, args.topic, {"time": time.time(), "values": values})
                time.sleep(1)
    finally:
        c.loop_stop()
        c.disconnect()


if __name__ == "__main__":
    main()
