"""The driver floor: the least a Python process using psycopg (the project's database driver) can
do for detection — import psycopg, connect, run the floor query and fetch its rows; nothing else.

    python bench/driver_floor.py CONNINFO SQL      (the password from $PGPASSWORD)

`bench/bench_orphans.py` and `bench/bench_scale.py` time it next to `psql` running the same query:
its ratio is the part of `repairtool orphans`' ratio that no Python code of ours can remove.
Deliberately standalone: importing anything else would add to the floor.
"""

import sys

import psycopg

with psycopg.connect(sys.argv[1]) as conn:
    conn.execute(sys.argv[2]).fetchall()
