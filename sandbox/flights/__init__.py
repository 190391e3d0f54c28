"""Flights of the sandbox service (Workspace Manager's, April 2021)."""
