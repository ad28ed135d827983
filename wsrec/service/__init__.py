"""Running wsrec as a long-lived service: what sits between the ``wsrec`` command and the
recording and replay engines.

    config      the config file of ``record --config``, checked
    supervisor  its streams, each a recorder into its own sessions, started, stopped and
                changed on SIGHUP without touching the others
    metrics     the Prometheus endpoint (/metrics) and the health check (/healthz) of
                running recordings
"""
