"""stairway-ops repair package: the Stairway database layer, FlightMap decoding, repair."""

__version__ = "0.1.0"
