"""The digital twin's engine side, a library like the other engines (it imports nothing from the service):

- ``model``: the line model (machines, operations, buffers, inspections, routings, product mix, shifts, failures,
  rework and scrap), loaded from YAML or JSON with errors naming the bad field's path; scenarios as overrides.
- ``distributions``: cycle, failure and repair times, fixed or random.
- ``calendar``: shift calendars (planned operation time).
- ``events``: machine state events, the state machine that rejects impossible transitions, rebuilding the state
  at any time from an event list, CSV/JSONL event files.
- ``oee``: OEE per machine, line and shift as ISO 22400-2 defines it, with the loss breakdown.
- ``sim``: the SimPy simulation generated from the model (needs the ``twin`` extra), started empty or from a
  given state; it emits the same state events, so OEE is computed by the same code.
- ``experiments``: replications (in parallel processes) with confidence intervals, scenarios side by side.
- ``plansim``: a schedule's plan run on the line (the plan's machine sequences, the model's failures, shifts and
  inspections): realised makespan, tardiness and lateness with confidence intervals beside the plan's figures.
- ``aas``: Asset Administration Shell export (basyx-python-sdk).

Import the submodules you need; this package imports nothing heavy."""
