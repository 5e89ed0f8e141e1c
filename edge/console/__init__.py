"""The operators' web console (issue #19): `parkgate console serve`, its own process beside the daemon.

It reads what the daemon already publishes (status.json, the store read-only) and acts only through the
daemon's control socket (gate open/hold/release, audited like the CLI) and the store's allow/deny lists
(applied by the daemon from the next car). Pure parts: :mod:`edge.console.auth` (sessions, CSRF, login
rate limit) and :mod:`edge.console.passes` (the passes search); the Host check against DNS rebinding:
:mod:`edge.console.hosts`; I/O: :mod:`edge.console.users` (the 0600
users file) and :mod:`edge.console.app` (the Starlette app)."""
