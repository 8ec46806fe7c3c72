"""Where reconciler lives on a node, as constants cheap enough to import anywhere."""

AGENT_CONFIG = "/etc/reconciler/agent.toml"
STATE_DIR = "/var/lib/reconciler"

# Inside the state directory:
LOCK = "lock"  # flock'ed by the one run allowed at a time
SOURCE_CACHE = "source.git"  # bare cache of the config repo
SOURCE_STATE = "source-state.json"  # last good commit, refused tip, rollback pin
APPLIED = "applied.json"  # what reconciler last wrote, per path (hashes only)
LAST_RUN = "last-run.json"
LAST_SUCCESS = "last-success.json"
HISTORY = "history"  # the node's own git history of runs
BACKUPS = "backups"  # originals of replaced files, by sha256
TEMPLATE_CACHE = "cache/templates"  # compiled templates, reused across runs
METRICS = "reconciler.prom"  # Prometheus textfile
