"""``linewatch twin``: check a line model, simulate it (replications, scenarios side by side), OEE from a file of
machine state events. Registered on the main app with one ``add_typer`` line; imports nothing heavy at load."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from linewatch.console import Bars, out, user_errors
from linewatch.core.extras import require
from linewatch.errors import LinewatchError

# ten years of simulated time: a longer horizon is a typo, and would run for days (a range with a maximum also
# refuses NaN, which passes a minimum alone)
MAX_HOURS = 87_600.0
MAX_SEED = 2**32 - 1


twin_app = typer.Typer(
    help="The digital twin: line models, OEE from machine state events, what-if simulation.",
    no_args_is_help=True,
)


@twin_app.command()
@user_errors
def validate(
    line: Annotated[Path, typer.Argument(help="line model, YAML or JSON")],
    json_out: Annotated[bool, typer.Option("--json", help="print the checked model as JSON")] = False,
) -> None:
    """Check a line model; print what it holds (or the first bad field, by its path, and exit 2)."""
    require("twin", "linewatch twin validate")
    from linewatch.twin.model import load_line

    ln = load_line(line)
    if json_out:
        print(json.dumps(ln.to_json()))
        return
    products = ln.product_list
    shifts = ", ".join(f"{s.name} {s.start}-{s.end}" for s in ln.shifts) or "none (always planned)"
    out.print(
        f"{ln.name}: valid — {len(ln.machines)} machines, {len(ln.buffers)} buffers, {len(products)} products "
        f"({', '.join(f'{p.name} {p.mix:g}' for p in products)}), {len(ln.inspections)} inspection stations; "
        f"shifts: {shifts}; releases: {'arrivals' if ln.arrivals else 'saturated'}",
        highlight=False,
        soft_wrap=True,
    )
    table = Table("machine", "operations (cycle s)", "failures (MTBF h / MTTR min)", "input buffer", "inspection")
    for m in ln.machines:
        ops = ", ".join(f"{o.name} {o.cycle_time_s.describe()}" for o in m.ops)
        fails = ", ".join(
            f"{f.cause} {f.ttf_s.mean_value / 3600:.3g}/{f.ttr_s.mean_value / 60:.3g}" for f in m.failures
        )
        bufs = ", ".join(
            f"{b.name} ({'∞' if b.capacity is None else b.capacity})" for o in m.ops if (b := ln.buffer_before(o.name))
        )
        ins = ln.inspection_at(m.name)
        ins_text = (
            "" if ins is None else f"{ins.station}: {100 * ins.defect_rate:g}% ({100 * ins.rework_fraction:g}% rework)"
        )
        table.add_row(m.name, ops, fails or "—", bufs or "(one place)", ins_text)
    out.print(table)


def _fmt(stat, scale: float = 1.0, pct: bool = False) -> str:
    if stat is None or math.isnan(stat.mean):
        return "—"
    k = 100.0 if pct else scale
    mean, hw = stat.mean * k, stat.half_width * k
    unit = "%" if pct else ""
    if stat.n < 2 or math.isnan(hw):
        return f"{mean:.1f}{unit}"
    return f"{mean:.1f} ± {hw:.1f}{unit}"


def _table(summaries, line) -> Table:
    cols = [s.name for s in summaries]
    t = Table("", *cols, title=f"{summaries[0].hours:g} h, {len(summaries[0].results)} replications, mean ± 95% CI")
    rows = [
        ("throughput / h", "throughput_per_h", 1.0, False),
        ("lead time min", "lead_time_s", 1 / 60, False),
        ("WIP parts", "wip", 1.0, False),
        ("line OEE (output)", "output_oee", 1.0, True),
        ("line OEE (Σ machines)", "oee", 1.0, True),
        ("scrapped", "scrap", 1.0, False),
        ("reworked", "reworked", 1.0, False),
    ]
    for label, key, scale, pct in rows:
        t.add_row(label, *[_fmt(s.stats.get(key), scale, pct) for s in summaries])
    t.add_row(
        "bottleneck", *[", ".join(f"{k} {100 * v:.0f}%" for k, v in list(s.bottleneck.items())[:2]) for s in summaries]
    )
    names = []
    for s in summaries:
        for k in s.results[0]["machines"]:
            if k not in names:
                names.append(k)
    for m in names:
        for what in ("utilisation", "blocked", "starved", "down", "oee"):
            t.add_row(f"{m} {what}", *[_fmt(s.stats.get(f"machines.{m}.{what}"), pct=True) for s in summaries])
    bufs = []
    for s in summaries:
        for k in s.results[0]["buffers"]:
            if k not in bufs and not k.endswith(" input"):  # declared buffers (not the one-place handovers)
                bufs.append(k)
    for b in bufs:
        t.add_row(f"{b} mean level", *[_fmt(s.stats.get(f"buffers.{b}.mean")) for s in summaries])
    return t


@twin_app.command()
@user_errors
def simulate(
    line: Annotated[Path, typer.Argument(help="line model, YAML or JSON")],
    hours: Annotated[
        float, typer.Option(help="simulated horizon in hours (168: a week)", min=0.001, max=MAX_HOURS)
    ] = 168.0,
    replications: Annotated[
        int, typer.Option(help="independent runs, for confidence intervals", min=1, max=10_000)
    ] = 30,
    seed: Annotated[
        int,
        typer.Option(help="seed of the whole experiment (replication i's seed derives from it)", min=0, max=MAX_SEED),
    ] = 0,
    workers: Annotated[int, typer.Option(help="parallel processes for the replications", min=1, max=256)] = 1,
    scenario: Annotated[
        list[Path] | None, typer.Option(help="what-if overrides (YAML/JSON), compared side by side; repeatable")
    ] = None,
    warmup: Annotated[
        float, typer.Option(help="hours left out of the statistics at the start", min=0, max=MAX_HOURS)
    ] = 0.0,
    initial: Annotated[
        Path | None, typer.Option(help="start state (YAML/JSON: machines {name: {state, remaining_s}}, buffers)")
    ] = None,
    start: Annotated[str | None, typer.Option(help="simulated start time, ISO 8601 (default 2024-01-01T00:00)")] = None,
    events_out: Annotated[
        Path | None, typer.Option("--events-out", help="write the base's first replication's state events (CSV/JSONL)")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="JSON lines: one per replication, then one per scenario")] = (
        False
    ),
) -> None:
    """Simulate a line: throughput, lead time, WIP, utilisation, blocking and starving, OEE, the bottleneck."""
    require("twin", "linewatch twin simulate")
    from linewatch.twin.events import write_events
    from linewatch.twin.experiments import compare, replication_seeds
    from linewatch.twin.model import _read_doc, _read_file, load_line, load_scenario
    from linewatch.twin.sim import InitialState, Simulation

    ln = load_line(line)
    scenarios = [load_scenario(p) for p in scenario or []]
    kw: dict = {"warmup_h": warmup}
    if warmup >= hours:
        raise LinewatchError("--warmup must be shorter than --hours")
    if initial is not None:
        data, name = _read_file(initial)
        doc = _read_doc(data, name)
        if not isinstance(doc, dict):
            raise LinewatchError(f"{initial}: expected a mapping with machines and/or buffers")
        kw["initial"] = InitialState.from_json(doc)
    if start is not None:
        kw["start"] = start
        try:
            from datetime import datetime

            datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError:
            raise LinewatchError(f"--start: {start!r} is not an ISO 8601 time") from None
    # check every scenario and the start state before the long part
    from linewatch.twin.model import apply_scenario

    for s in scenarios:
        apply_scenario(ln, s)
    Simulation(ln, min(hours, 0.001), seed=0, **{**kw, "warmup_h": 0}).run()
    with Bars() as bars:
        summaries = compare(
            ln, scenarios, hours, replications, seed, workers, progress=lambda n, d, t: bars(n, d, t), **kw
        )
    if events_out is not None:
        sim = Simulation(ln, hours, seed=replication_seeds(seed, 1)[0], **kw)
        sim.run()
        write_events(sim.events, events_out)
    if json_out:
        for s in summaries:
            for i, r in enumerate(s.results):
                print(json.dumps(_finite({"scenario": s.name, "replication": i, **r}), allow_nan=False))
        for s in summaries:
            print(json.dumps(_finite(s.to_json()), allow_nan=False))
        return
    out.print(_table(summaries, ln))


def _finite(x):
    """NaN and infinities (a figure without data, an interval from one replication) become null: strict JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


@twin_app.command()
@user_errors
def oee(
    events: Annotated[Path, typer.Argument(help="machine state events, CSV or JSON Lines")],
    from_: Annotated[
        str | None, typer.Option("--from", help="range start, ISO 8601 or epoch s (default: first event)")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="range end (default: last event)")] = None,
    line: Annotated[
        Path | None, typer.Option(help="line model: ideal cycle times per product, shifts, the machines")
    ] = None,
    ideal: Annotated[
        list[str] | None, typer.Option(help="MACHINE=SECONDS ideal cycle time, without --line; repeatable")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """OEE per machine, for the line and per shift (ISO 22400-2), with the losses, from a file of state events."""
    require("twin", "linewatch twin oee")
    from linewatch.twin.events import format_time, parse_time, read_events
    from linewatch.twin.model import load_line
    from linewatch.twin.oee import compute_oee, pct, summary_rows

    ln = load_line(line) if line is not None else None
    table = {}
    for item in ideal or []:
        name, _, secs = item.rpartition("=")
        try:
            table[name] = float(secs)
            if not name or not table[name] > 0:
                raise ValueError
        except ValueError:
            raise LinewatchError(f"--ideal: expected MACHINE=SECONDS with SECONDS > 0, got {item!r}") from None
    evs = read_events(events)
    if ln is None:
        missing = sorted({e.machine for e in evs} - set(table))
        if missing:
            raise LinewatchError(
                f"OEE needs each machine's ideal cycle time: give --line LINE.yaml, or --ideal {missing[0]}=SECONDS "
                f"for {', '.join(missing)}"
            )
    t1 = parse_time(from_, "--from") if from_ is not None else min(e.time for e in evs)
    t2 = parse_time(to, "--to") if to is not None else max(e.time for e in evs)
    if not t2 > t1:
        raise LinewatchError(f"--to ({format_time(t2)}) must be after --from ({format_time(t1)})")
    rep = compute_oee(evs, t1, t2, ln, ideal_cycle_s=table)
    if json_out:
        print(json.dumps(rep.to_json()))
        return
    t = Table(
        "machine",
        "OEE",
        "availability",
        "performance",
        "quality",
        "good",
        "scrap",
        "rework",
        "top downtime",
        title=f"{format_time(t1)} to {format_time(t2)}",
    )
    for row in summary_rows(rep):
        t.add_row(*map(escape, row))  # reasons and names from the events file: [brackets] print as they are
    out.print(t)
    losses = rep.line.losses()
    downtime = ", ".join(f"{escape(k)} {v / 60:.0f} min" for k, v in losses["downtime_s"].items()) or "none"
    delays = ", ".join(f"{escape(k)} {v / 60:.0f} min" for k, v in losses["delay_s"].items()) or "none"
    out.print(
        f"losses: downtime {downtime}; delays {delays}; speed {losses['speed_loss_s'] / 60:.0f} min; "
        f"scrap {losses['scrap_loss_s'] / 60:.0f} min; rework {losses['rework_loss_s'] / 60:.0f} min; "
        f"planned downtime {losses['planned_downtime_s'] / 60:.0f} min",
        highlight=False,
        soft_wrap=True,
    )
    for name, _a, _b, _ms, ln_oee in rep.shifts:
        extra = "" if ln_oee.output_oee is None else f", output OEE {pct(ln_oee.output_oee)}"
        out.print(f"shift {escape(name)}: OEE {pct(ln_oee.oee)}{extra}", highlight=False)
    if rep.rejected:
        ev, why = rep.rejected[0]
        out.print(
            f"{len(rep.rejected)} events left out as impossible, e.g. {escape(str(ev.machine))} at "
            f"{format_time(ev.time)}: {escape(str(why))}",
            highlight=False,
            soft_wrap=True,
        )


@twin_app.command()
@user_errors
def aas(
    line: Annotated[Path, typer.Argument(help="line model, YAML or JSON")],
    live: Annotated[
        Path | None, typer.Option(help="JSON: machine name -> live properties (state, health, counts, ...)")
    ] = None,
    base_id: Annotated[str, typer.Option(help="URN prefix of the identifiers")] = "urn:linewatch",
    out_path: Annotated[Path | None, typer.Option("--out", "-o", help="write here instead of stdout")] = None,
) -> None:
    """Export the line's machines (and live properties) as an Asset Administration Shell JSON environment."""
    require("twin", "linewatch twin aas")
    from linewatch.twin.aas import export_aas
    from linewatch.twin.model import _read_doc, _read_file, load_line

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:\S+", base_id):
        raise LinewatchError(f"--base-id {base_id!r} is not a URN or URL (such as urn:acme:plant-2)")
    ln = load_line(line)
    props = None
    if live is not None:
        data, name = _read_file(live)
        props = _read_doc(data, name)
        if not isinstance(props, dict) or not all(isinstance(v, dict) for v in props.values()):
            raise LinewatchError(f"{live}: expected a mapping of machine name to a mapping of properties")
    try:
        text = export_aas(ln, props, base_id)
    except ValueError as e:
        raise LinewatchError(f"{live}: {e}") from None
    if out_path is not None:
        out_path.write_text(text, encoding="utf-8")
    else:
        print(text)


plant_app = typer.Typer(
    help="A simulated plant driving a linewatch service (MQTT states, buffer levels and readings, images to inspect).",
    no_args_is_help=True,
)


@plant_app.command("simulate")
@user_errors
def plant_simulate(
    line: Annotated[Path, typer.Argument(help="line model, YAML or JSON")],
    speed: Annotated[float, typer.Option(help="times real time (60: an hour in a minute)", min=0.001, max=1e6)] = 60.0,
    hours: Annotated[float, typer.Option(help="simulated hours, ending now", min=0.001, max=MAX_HOURS)] = 1.0,
    mqtt: Annotated[str, typer.Option(help="the service's MQTT broker")] = "mqtt://127.0.0.1:1883",
    prefix: Annotated[str, typer.Option(help="the service's mqtt_topic_prefix")] = "linewatch",
    line_name: Annotated[
        str | None, typer.Option("--line-name", help="the service's line (default: the model's name)")
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="the service (images, its machines' sensors): http://host:8000")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="API key (operator) for --url", envvar="LINEWATCH_API_KEY")
    ] = None,
    images: Annotated[
        Path | None, typer.Option(help="MVTec-layout folder: part images for the inspection stations (needs --url)")
    ] = None,
    series: Annotated[
        Path | None, typer.Option(help="CSV of real sensor series (time + columns): their shapes drive the readings")
    ] = None,
    seed: Annotated[int, typer.Option(help="the simulation's seed", min=0, max=MAX_SEED)] = 0,
    reading_every: Annotated[
        float, typer.Option(help="simulated seconds between sensor readings (and buffer levels)", min=0.1, max=86_400)
    ] = 10.0,
) -> None:
    """Simulate the line (its last HOURS, ending now) and replay it into a running service at SPEED x real time:
    machine states, buffer levels and sensor readings over MQTT, part images to the inspect API."""
    require("twin", "linewatch plant simulate")
    from linewatch.twin.model import load_line
    from linewatch.twin.plant import ImageSource, Plant, Series, mqtt_publisher

    ln = load_line(line)
    imgs = ImageSource.open(images) if images is not None else None
    shapes = Series.read(series) if series is not None else None
    if imgs is not None and url is None:
        raise LinewatchError("--images needs --url (images go to the service's inspect API)")
    if api_key is None and url is not None:
        raise LinewatchError("--url needs --api-key (or LINEWATCH_API_KEY): an operator's API key")
    client = None
    if url is not None:
        from linewatch.client import Client

        client = Client(url, api_key=api_key)
    publish, close = mqtt_publisher(mqtt)
    try:
        plant = Plant(
            ln,
            line_name or ln.name,
            publish,
            prefix,
            speed,
            hours,
            seed,
            client,
            imgs,
            shapes,
            reading_every,
        )
        with Bars() as bars:
            stats = plant.run(bars)
    finally:
        close()
        if client is not None:
            client.close()
    out.print(
        f"sent {stats.states:,} state events, {stats.buffer_levels:,} buffer levels, {stats.readings:,} readings "
        f"and {stats.images:,} images"
        + (
            f" ({stats.image_errors} images refused; last: {escape(str(stats.last_error))})"
            if stats.image_errors
            else ""
        ),
        highlight=False,
    )
