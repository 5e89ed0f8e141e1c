"""The gateway daemon: ``parkgate run`` (see :mod:`edge.daemon.service`)."""
