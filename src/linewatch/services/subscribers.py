"""Who listens to which event. Every part that reacts to something that happened subscribes here, once, instead
of being called inline by whoever made it happen."""

from __future__ import annotations

from linewatch.core.events import Event, InspectionDeleted, InspectionReviewed, InspectionStored, ModelActivated
from linewatch.services.context import AppContext


def subscribe_all(ctx: AppContext) -> None:
    bus = ctx.bus
    bus.subscribe(lambda event: ctx.live.publish(event.message()))  # WebSocket clients: every event, any process
    bus.subscribe(lambda event: _count_inspection(ctx, event), InspectionStored, local_only=True)
    bus.subscribe(lambda event: _index_inspection(ctx, event), InspectionStored, local_only=True)
    bus.subscribe(lambda event: _remember_upload(ctx, event), InspectionStored, local_only=True)
    # the index payload follows the review (defect type, verdict); it reads the database, so any process's review
    bus.subscribe(lambda event: _refresh_index(ctx, event), InspectionReviewed)
    bus.subscribe(lambda event: _forget_inspection(ctx, event), InspectionDeleted, local_only=True)
    # a station's model changed (in any process the bus reaches): its next image is scored with the new one
    bus.subscribe(lambda event: ctx.station_models.clear(), ModelActivated)


def _count_inspection(ctx: AppContext, event: Event) -> None:
    """Prometheus counters are per process: each counts what it stored (a scrape sums the instances)."""
    row, station, _vectors = event.stored
    if row.duplicate_of is None:  # a repeated upload is not a second part: the line's counts skip it
        ctx.metrics.inspections.labels(station, row.verdict).inc()
    else:
        ctx.metrics.duplicates.labels(station, row.duplicate_kind).inc()
    ctx.metrics.inspection_latency.labels(station).observe(row.latency_ms / 1000)


def _index_inspection(ctx: AppContext, event: Event) -> None:
    from linewatch.services.searching import Entry

    row, station, vectors = event.stored
    if ctx.search is not None and vectors is not None:
        ctx.search.add([Entry(row, station, vectors)], new=True)


def _refresh_index(ctx: AppContext, event: Event) -> None:
    if ctx.search is not None and ctx.search.started:
        ctx.search.refresh(event.inspection_id)


def _forget_inspection(ctx: AppContext, event: Event) -> None:
    if ctx.recent is not None and event.station_id is not None:
        ctx.recent.forget(event.station_id)
    if ctx.search is not None:
        if event.vectors is not None:
            ctx.search.remove([event.vectors])
        if event.promoted_id is not None:  # the first repeat is an original now: searchable in its place
            ctx.search.refresh(event.promoted_id)


def _remember_upload(ctx: AppContext, event: Event) -> None:
    if ctx.recent is not None:
        ctx.recent.note([event.stored[0]])
