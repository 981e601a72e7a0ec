"""The inspection service: FastAPI app, routes by resource, auth, jobs, events, metrics."""
