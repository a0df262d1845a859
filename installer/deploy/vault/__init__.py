"""Vault (or OpenBao) from the control host, through hvac: init, unseal, status, configuration, site PKI.

Only API paths both HashiCorp Vault and OpenBao implement are used (sys/init, sys/unseal, sys/seal-status,
sys/leader, sys/generate-root, sys/storage/raft/configuration, sys/mounts, sys/auth, sys/policy, sys/audit,
auth/token, auth/kubernetes, KV v2, PKI). Nothing here ever holds an unseal share or a token in clear
outside memory.
"""
