"""`gmnas bench`: throughput, GM scoring time, fast paths and stage schedules."""
