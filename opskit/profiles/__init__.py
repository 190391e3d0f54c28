"""Service profiles (data): the defaults of each kind of Stairway service, by file name."""
