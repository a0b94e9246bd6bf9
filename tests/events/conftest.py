from tests.alerts.conftest import pro, pro_client, pro_workspace  # noqa: F401  (shared fixtures)
