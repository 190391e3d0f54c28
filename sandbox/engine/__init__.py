"""The Stairway engine, re-implemented for the sandbox workers (one generation per pod)."""
