#!/usr/bin/env bash
# Installs Autobahn|Testsuite (Python 2.7 only) into benchmarks/autobahn/.venv.
# Needs pyenv's Python 2.7.18 (or PYTHON2=/path/to/python2.7). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON2="${PYTHON2:-$HOME/.pyenv/versions/2.7.18/bin/python}"
"$PYTHON2" -m pip install --user --quiet "virtualenv<20.22"
"$PYTHON2" -m virtualenv --quiet .venv
.venv/bin/pip install --quiet "autobahntestsuite==25.10.1"
.venv/bin/wstest --autobahnversion
