#!/usr/bin/env bash
# Start a visdom server for training displays, reachable from this machine only.
# Usage: bash scripts/start_visdom.sh [PORT]   (default 8097; PYTHON=... overrides the interpreter)
set -euo pipefail

port="${1:-8097}"
source "$(dirname "${BASH_SOURCE[0]}")/project_python.sh"  # REPO_ROOT and PYTHON

# find_spec locates visdom without importing it (and torch with it), as get_visdom_path does.
static="$("$PYTHON" - <<'PY'
import importlib.util, os, sys
spec = importlib.util.find_spec("visdom")
if spec is None:
    sys.exit("visdom is not installed for %s: pip install visdom" % sys.executable)
print(os.path.join(os.path.dirname(spec.origin), "static"))
PY
)"
# Without version.built the server tries to download its web files from CDNs and
# exits when offline; the setup script places them from the npm registry instead.
if [ ! -f "$static/version.built" ]; then
    "$PYTHON" "$REPO_ROOT/scripts/setup_visdom_offline.py"
fi

echo "visdom: open http://127.0.0.1:$port in a browser on this machine"
# --hostname, not -hostname: argparse reads -hostname as -h.
exec "$PYTHON" -m visdom.server -port "$port" --hostname 127.0.0.1 -bind_local
