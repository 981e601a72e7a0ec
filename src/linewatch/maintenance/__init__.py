"""Predictive maintenance: remaining useful life (RUL) with conformal intervals from sensor histories, and
calibrated failure risk from machine readings. A library first: it imports nothing from the service."""
