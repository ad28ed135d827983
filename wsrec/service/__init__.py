"""Running wsrec as a long-lived service: what sits between the ``wsrec`` command and the
recording and replay engines.

    metrics     the Prometheus endpoint (/metrics) and the health check (/healthz) of
                running recordings
"""
