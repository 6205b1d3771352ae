"""Names shared by the controller, proxies, replicas and clients."""

SERVE_NAMESPACE = "serve"
CONTROLLER_NAME = "SERVE_CONTROLLER_ACTOR"
PROXY_NAME = "SERVE_PROXY_ACTOR"
REPLICA_PREFIX = "SERVE_REPLICA"
DEFAULT_APP_NAME = "default"
#: The controller's status summary, for the dashboard (which has no driver of its own).
KV_NAMESPACE = "serve"
KV_STATUS_KEY = b"status"
ROUTES_KEY = "routes"
MODEL_ID_HEADER = "serve_multiplexed_model_id"
#: How long a long-poll waits for a change before answering "no change".
LISTEN_TIMEOUT_S = 30.0
#: How often the controller reconciles.
CONTROL_LOOP_PERIOD_S = 0.05


def replicas_key(app: str, deployment: str) -> str:
    return f"replicas:{app}:{deployment}"
