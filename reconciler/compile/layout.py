"""Where things are in a config repo, in a module of its own: the actions that read a
file from the repo (an apt key, a package's preseed) name its place without loading the
parser (lxml) and the fleet's model."""

from __future__ import annotations

FLEET_FILE = "fleet.xml"
CLASSES_DIR = "classes"
TEMPLATES_DIR = "templates"
