"""One site's identity settings, as an inventory's all.vars would hold them (shared by the idp tests)."""

SITE_VARS = {
    "medai_cluster_name": "radiology-prod",
    "medai_keycloak_hostname": "keycloak.radiology.internal",
    "medai_keycloak_clients": {
        "harbor": {"redirect_uris": ["https://harbor.radiology.internal/c/oidc/callback"]},
        "medical-ai-api": {"redirect_uris": ["https://api.radiology.internal/oauth2/callback"]},
        "medical-ai-web": {"redirect_uris": ["https://ai.radiology.internal/auth/callback"],
                           "web_origins": ["https://ai.radiology.internal"]},
    },
    "medai_keycloak_users": [
        {"username": "dr.grey", "email": "grey@radiology.internal", "groups": ["clinician"]},
        {"username": "r.chen", "email": "chen@radiology.internal", "groups": ["researcher"]},
        {"username": "ops.lee", "email": "lee@radiology.internal", "groups": ["platform-admin"]},
    ],
}
