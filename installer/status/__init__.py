"""`medai status`: the site at a glance, one line per concern (ok / warn / crit and the fact behind it), read-only,
every probe under a timeout (docs/status.md)."""
