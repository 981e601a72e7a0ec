"""Job-shop scheduling: the model (``model``), instance files (``formats``), plans and their check (``plan``),
dispatching rules (``rules``), the CP-SAT solver (``cpsat``, needs the ``scheduling`` extra) and replanning after an
event (``replan``). Import the submodules you need; this package imports nothing heavy."""
