"""Stage entry points: each module's ``main(cfg)`` is one ``gmnas`` subcommand."""
