"""What is applied to the cluster: each component's values and objects, the site render, the one order and the one
Helm applier (install, upgrade, rollback, uninstall). Below the control-host flows in installer/deploy."""
