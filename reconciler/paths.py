"""Where reconciler lives on a node, as constants cheap enough to import anywhere."""

AGENT_CONFIG = "/etc/reconciler/agent.toml"
STATE_DIR = "/var/lib/reconciler"
