"""Harbor configuration through its REST API v2.0: projects, robot accounts, OIDC login.

client.py (HTTP + errors), projects.py, robots.py, oidc.py, configure.py
(the one call the role's helper makes). Every request body is checked in tests against Harbor 2.13's
published swagger (tests/platform_idp/harbor_contract.py).
"""
