"""Writes deploy/base/prometheus-rules.yaml from deploy/alerts/tickgate-rules.yml.

The plain Prometheus rule file is the canonical source; the PrometheusRule is
the same groups wrapped for the Prometheus Operator. Run after editing the
rules:  python3 deploy/tests/sync_rules.py
With --check, exits 1 (writing nothing) when the committed file is stale.
"""

import pathlib
import sys

DEPLOY = pathlib.Path(__file__).resolve().parent.parent
SOURCE = DEPLOY / "alerts" / "tickgate-rules.yml"
TARGET = DEPLOY / "base" / "prometheus-rules.yaml"

HEADER = """\
# GENERATED from deploy/alerts/tickgate-rules.yml by deploy/tests/sync_rules.py:
# edit that file, then run `python3 deploy/tests/sync_rules.py`.
# The release label is what a kube-prometheus-stack install's
# ruleSelector matches by default (release: <helm release name>); adjust it.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: tickgate
  labels:
    app.kubernetes.io/name: tickgate
    app.kubernetes.io/component: gateway
    release: kube-prometheus-stack
spec:
"""


def render() -> str:
    lines = []
    for line in SOURCE.read_text().splitlines():
        # Drop the source's own header comment; keep comments inside rules.
        if not lines and (line.startswith("#") or not line.strip()):
            continue
        lines.append(("  " + line) if line.strip() else "")
    return HEADER + "\n".join(lines) + "\n"


def main() -> int:
    wanted = render()
    if "--check" in sys.argv[1:]:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current != wanted:
            print(f"{TARGET} is stale: run python3 deploy/tests/sync_rules.py")
            return 1
        return 0
    TARGET.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
