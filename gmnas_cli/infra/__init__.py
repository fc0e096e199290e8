"""Infrastructure: errors, registries, logging, seeding, threads, locks, atomic files, failpoints, ranks."""
