"""Settings for the uvicorn subprocess of the SSE tests: the project's, with a short heartbeat and poll."""

from config.settings import *  # noqa: F403

SPINDLE_SSE_HEARTBEAT_S = 1.0
SPINDLE_SSE_POLL_S = 0.1
