"""Keycloak's realm ``medical-ai`` as a declarative document for keycloak-config-cli.

Why keycloak-config-cli and not ``kc.sh start --import-realm``: --import-realm skips a realm that already
exists, so an upgrade that changes the OTP policy or a redirect URI would silently not apply. keycloak-config-cli
compares the document with the live realm through the admin API and applies the difference, every run.
"""
