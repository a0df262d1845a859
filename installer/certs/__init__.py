"""Every certificate the site depends on: read (node files, Vault's PKI, the kubeconfig, operator keys),
classified against the site's thresholds, grouped, and renewed one group at a time (docs/certs.md)."""
