"""The sensor anomaly engine: detectors for machine time series and tables (PyOD and scikit-learn adapters over a
declarative feature pipeline), a streaming detector for many series at once, per-sensor attribution, and the
NAB / SKAB scoring used by the benchmarks. A library first: it imports nothing from the service, the store or the
web. The registry of methods (``linewatch.sensors.methods``) is light; detectors import PyOD and pandas."""
