"""Prometheus metrics of the service, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.inspections = Counter(
            "linewatch_inspections",
            "Parts inspected, by station and verdict (repeated uploads are counted as duplicates instead)",
            ["station", "verdict"],
            registry=r,
        )
        self.duplicates = Counter(
            "linewatch_duplicate_inspections",
            "Uploads repeating a recent one of the same station: exact (same bytes) or near (perceptual hash)",
            ["station", "kind"],
            registry=r,
        )
        self.inspection_latency = Histogram(
            "linewatch_inspection_latency_seconds",
            "Time to score and store one image",
            ["station"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("linewatch_job_queue_depth", "Jobs waiting to run", registry=r)
        self.jobs_running = Gauge("linewatch_jobs_running", "Jobs running now", registry=r)
        self.job_duration = Histogram(
            "linewatch_job_duration_seconds",
            "Job run time by kind and outcome",
            ["kind", "status"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
            registry=r,
        )
        self.http_requests = Counter(
            "linewatch_http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "linewatch_http_request_duration_seconds",
            "HTTP request time by method and route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.drift_level = Gauge(
            "linewatch_station_drift_level",
            "A station's drift watch: -1 unknown, 0 ok, 1 watch, 2 drift (the latest check of this process)",
            ["station"],
            registry=r,
        )
        self.drift_auroc = Gauge(
            "linewatch_station_drift_shift_auroc",
            "A station's recent scores against its model's good ones: 0.5 unmoved, towards 1 higher",
            ["station"],
            registry=r,
        )
        self.drift_look = Gauge(
            "linewatch_station_drift_look_auroc",
            "A station's recent photos against its model's good ones, by how far each is from the nearest good one: "
            "0.5 unmoved, towards 1 they look otherwise",
            ["station"],
            registry=r,
        )
        self.drift_brightness = Gauge(
            "linewatch_station_drift_brightness_change",
            "A station's recent photos' median brightness relative to its model's good ones, minus 1 (-0.2: darker)",
            ["station"],
            registry=r,
        )
        self.ws_clients = Gauge("linewatch_websocket_clients", "Connected WebSocket clients", registry=r)
        self.ws_dropped = Counter("linewatch_websocket_dropped_events", "Events dropped for slow clients", registry=r)
        # machines
        self.readings = Counter(
            "linewatch_readings_ingested",
            "Sensor readings stored, by source (mqtt, nats, http, import)",
            ["source"],
            registry=r,
        )
        self.dead_letters = Counter(
            "linewatch_dead_letters",
            "Readings refused at ingest, by source and reason",
            ["source", "reason"],
            registry=r,
        )
        self.ingest_lag = Histogram(
            "linewatch_ingest_lag_seconds",
            "Time from a message's arrival to its readings' commit",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.alerts_open = Gauge("linewatch_alerts_open", "Machine alerts open now", registry=r)
        self.machine_health = Gauge(
            "linewatch_machine_health", "Machine health, 0 (alerting) to 1", ["machine"], registry=r
        )
