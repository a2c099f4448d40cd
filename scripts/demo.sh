#!/usr/bin/env bash
# Sets everything up, builds the demo input and runs manifests/demo.yaml end to end on a local Ray instance.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m stages.fixtures.demo_corpus .demo/inputs
.venv/bin/pipeline run manifests/demo.yaml --overwrite
.venv/bin/pipeline query demo_out "SELECT stage, reason, count(*) AS n FROM rejects GROUP BY ALL ORDER BY n DESC"
