# Sourced by the scripts here: REPO_ROOT is the checkout, PYTHON the interpreter to use
# ($PYTHON if set, else the project's .venv made by `make install`, else python3).
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$REPO_ROOT/.venv/bin/python" ]; then PYTHON="$REPO_ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
