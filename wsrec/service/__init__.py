"""Running wsrec as a long-lived service: many streams from one config file in one
process (``config``: the file, checked; ``supervisor``: the streams, each a recorder
into its own sessions, started, stopped and changed on SIGHUP without touching the
others). Sits between the CLI and the recording and replay layers."""
