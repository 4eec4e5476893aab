"""Writes the tickgate Grafana dashboards (grafana/dashboards/*.json).

The JSON files are generated so that uids, panel ids, refIds and the
datasource wiring stay stable and uniform; edit this file, then run

    python3 grafana/build_dashboards.py

deploy/test.sh fails when the committed JSON differs from what this writes
(`--check`). Standard library only.

Conventions (so the dashboards load by file provisioning as they are):
- every panel and every query uses the `datasource` template variable,
  never a fixed datasource uid or `${DS_PROMETHEUS}` input;
- series are selected by the `namespace` and `pod` variables (labels the
  Prometheus Operator adds; with "All" the selector also matches series
  without those labels, as in a plain Prometheus);
- rates use `$__rate_interval`.
"""

import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'namespace=~"$namespace", pod=~"$pod"'
RI = "$__rate_interval"


# --- building blocks -------------------------------------------------------


def target(expr, legend, ref, fmt=None, instant=False):
    t = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend, "range": not instant, "instant": instant}
    if fmt:
        t["format"] = fmt
    return t


def thresholds(*steps):
    """steps: (color, value) pairs; the first value is the base (None)."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


GREEN = thresholds(("green", None))


def panel(kind, title, description, queries, unit, grid, th=GREEN, extra_defaults=None, options=None, overrides=None):
    defaults = {"unit": unit, "thresholds": th, "color": {"mode": "palette-classic" if kind == "timeseries" else "thresholds"}}
    if kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            "thresholdsStyle": {"mode": "off" if th is GREEN else "line"},
        }
    if extra_defaults:
        defaults.update(extra_defaults)
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": grid,
        "targets": [target(*q[:2], chr(ord("A") + i), *q[2:]) for i, q in enumerate(queries)],
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
    }
    if options is not None:
        p["options"] = options
    elif kind == "timeseries":
        p["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif kind == "stat":
        p["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "textMode": "value",
            "justifyMode": "auto",
            "orientation": "auto",
        }
    return p


def row(title, y):
    return {"type": "row", "title": title, "datasource": DS, "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}


def g(x, y, w, h):
    return {"x": x, "y": y, "w": w, "h": h}


def variables(extra=()):
    query_var = lambda name, label, query: {  # noqa: E731
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-variable"},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "regex": "",
        "hide": 0,
        "options": [],
    }
    return {
        "list": [
            {
                "type": "datasource",
                "name": "datasource",
                "label": "Data source",
                "query": "prometheus",
                "regex": "",
                "current": {},
                "hide": 0,
                "refresh": 1,
                "includeAll": False,
                "multi": False,
                "options": [],
            },
            query_var("namespace", "Namespace", "label_values(tickgate_build_info, namespace)"),
            query_var("pod", "Pod", 'label_values(tickgate_build_info{namespace=~"$namespace"}, pod)'),
            *extra,
        ]
    }


def dashboard(uid, title, description, panels, templating, links):
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["tickgate"],
        "editable": True,
        "graphTooltip": 1,
        "timezone": "",
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "timepicker": {},
        "schemaVersion": 39,
        "version": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": links,
        "templating": templating,
        "panels": panels,
    }


def link(title, uid):
    return {
        "type": "link",
        "title": title,
        "url": f"/d/{uid}",
        "icon": "dashboard",
        "keepTime": True,
        "includeVars": True,
        "asDropdown": False,
        "targetBlank": False,
        "tags": [],
        "tooltip": "",
    }


def quantiles(metric, by, qs, sel, legend_prefix):
    out = []
    for q in qs:
        group = ", ".join([*by, "le"])
        expr = f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{sel}}}[{RI}])))"
        out.append((expr, f"{legend_prefix}p{int(q * 100)}"))
    return out


# --- overview ----------------------------------------------------------------

LATENCY_TH = thresholds(("green", None), ("yellow", 0.05), ("red", 0.25))
FEED_STATE_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "down", "color": "red", "index": 0},
            "1": {"text": "up", "color": "green", "index": 1},
        },
    }
]


def overview():
    conflation = (
        f"sum(rate(tickgate_updates_conflated_total{{{SEL}}}[{RI}]))"
        f" / (sum(rate(tickgate_updates_conflated_total{{{SEL}}}[{RI}]))"
        f" + sum(rate(tickgate_updates_sent_total{{{SEL}}}[{RI}])))"
    )
    conflation_by_pod = (
        f"sum by (pod) (rate(tickgate_updates_conflated_total{{{SEL}}}[{RI}]))"
        f" / (sum by (pod) (rate(tickgate_updates_conflated_total{{{SEL}}}[{RI}]))"
        f" + sum by (pod) (rate(tickgate_updates_sent_total{{{SEL}}}[{RI}])))"
    )
    container = f'namespace=~"$namespace", pod=~"$pod", container="tickgate"'
    panels = [
        # At a glance.
        panel("stat", "Connections", "Open client WebSocket connections, all selected pods.",
              [(f"sum(tickgate_connections{{{SEL}}})", "connections")], "short", g(0, 0, 4, 4),
              th=thresholds(("blue", None))),
        panel("stat", "Updates delivered /s", "Quotes delivered to clients per second (tickgate_updates_sent_total).",
              [(f"sum(rate(tickgate_updates_sent_total{{{SEL}}}[{RI}]))", "updates/s")], "ops", g(4, 0, 4, 4),
              th=thresholds(("blue", None))),
        panel("stat", "Conflation ratio", "Share of per-client updates replaced by a newer value before they were sent: conflated / (conflated + delivered). High means clients (or the gateway) cannot keep up with the tick rate; they still get the latest value.",
              [(conflation, "conflated")], "percentunit", g(8, 0, 4, 4),
              th=thresholds(("green", None), ("yellow", 0.5), ("red", 0.9)),
              extra_defaults={"decimals": 1, "min": 0, "max": 1}),
        panel("stat", "Tick-to-send p99", "99th percentile of the time from gateway receipt of a tick to the frame carrying it being written. Alert TickgateTickToSendP99High fires above 250 ms.",
              quantiles("tickgate_tick_to_send_seconds", [], [0.99], SEL, ""), "s", g(12, 0, 4, 4), th=LATENCY_TH),
        panel("stat", "Feeds down", "Feeds that are not live, counted per pod (tickgate_feed_up == 0).",
              [(f"count(tickgate_feed_up{{{SEL}}} == 0) or vector(0)", "down")], "short", g(16, 0, 4, 4),
              th=thresholds(("green", None), ("red", 1))),
        panel("stat", "Pods", "Gateway processes reporting tickgate_build_info.",
              [(f"count(tickgate_build_info{{{SEL}}})", "pods")], "short", g(20, 0, 4, 4),
              th=thresholds(("blue", None))),
        row("Clients", 4),
        panel("timeseries", "Connections per pod", "Open connections per pod. The dashed line is 90 % of limits.max_connections (10000), where TickgateConnectionsNearLimit fires.",
              [(f"sum by (pod) (tickgate_connections{{{SEL}}})", "{{pod}}")], "short", g(0, 5, 12, 8),
              th=thresholds(("green", None), ("red", 9000))),
        panel("timeseries", "Connections opened and closed /s", "Accepted upgrades per second, and closes by reason (client_closed, shutdown, idle_timeout, message_too_big, protocol_error, write_failed). A burst of shutdown closes is a pod draining.",
              [(f"sum(rate(tickgate_connections_opened_total{{{SEL}}}[{RI}]))", "opened"),
               (f"sum by (reason) (rate(tickgate_connections_closed_total{{{SEL}}}[{RI}]))", "closed: {{reason}}")],
              "ops", g(12, 5, 12, 8)),
        panel("timeseries", "Subscriptions and symbols", "Subscriptions summed over all connections, and symbols known to the snapshot store, per pod.",
              [(f"sum by (pod) (tickgate_subscriptions{{{SEL}}})", "subscriptions {{pod}}"),
               (f"max by (pod) (tickgate_symbols{{{SEL}}})", "symbols {{pod}}")],
              "short", g(0, 13, 8, 8)),
        panel("timeseries", "Upgrades refused /s", "WebSocket upgrades answered 503 before opening, by reason: max_connections (pod full) or draining (pod shutting down).",
              [(f"sum by (reason) (rate(tickgate_connections_refused_total{{{SEL}}}[{RI}]))", "{{reason}}")],
              "ops", g(8, 13, 8, 8)),
        panel("timeseries", "Client errors /s", "Error replies sent to clients, by error code (bad_request, invalid_symbol, too_many_subscriptions, …).",
              [(f"sum by (code) (rate(tickgate_client_errors_total{{{SEL}}}[{RI}]))", "{{code}}")],
              "ops", g(16, 13, 8, 8)),
        row("Delivery", 21),
        panel("timeseries", "Updates and frames /s", "Quotes delivered per second, and the WebSocket frames carrying them. Updates per frame above 1 means batching is working.",
              [(f"sum(rate(tickgate_updates_sent_total{{{SEL}}}[{RI}]))", "updates"),
               (f"sum(rate(tickgate_frames_sent_total{{{SEL}}}[{RI}]))", "frames")],
              "ops", g(0, 22, 12, 8)),
        panel("timeseries", "Conflation ratio per pod", "conflated / (conflated + delivered) per pod.",
              [(conflation_by_pod, "{{pod}}")], "percentunit", g(12, 22, 12, 8),
              th=thresholds(("green", None), ("yellow", 0.5), ("red", 0.9)),
              extra_defaults={"min": 0, "max": 1}),
        panel("timeseries", "Tick-to-send latency", "p50 and p99 of gateway receipt to frame written, over all selected pods, with p99 per pod.",
              quantiles("tickgate_tick_to_send_seconds", [], [0.5, 0.99], SEL, "all ")
              + [(f"histogram_quantile(0.99, sum by (pod, le) (rate(tickgate_tick_to_send_seconds_bucket{{{SEL}}}[{RI}])))", "p99 {{pod}}")],
              "s", g(0, 30, 12, 8), th=LATENCY_TH),
        panel("timeseries", "Bytes sent /s", "Payload bytes of frames written to clients, per pod.",
              [(f"sum by (pod) (rate(tickgate_bytes_sent_total{{{SEL}}}[{RI}]))", "{{pod}}")],
              "Bps", g(12, 30, 6, 8)),
        panel("timeseries", "Slow consumers", "Connections whose socket has not taken a batch for longer than connection.slow_consumer_ms, per pod; connections the slow-consumer ladder is slowing right now; and stalled readers closed with 4008 per minute. They keep being served, conflated; TickgateSlowConsumers fires when many stay slow.",
              [(f"sum by (pod) (tickgate_slow_consumers{{{SEL}}})", "{{pod}}"),
               (f"sum by (pod) (tickgate_slowed_connections{{{SEL}}})", "slowed {{pod}}"),
               (f"sum by (pod) (rate(tickgate_slow_consumer_steps_total{{{SEL},step=\"closed\"}}[{RI}])) * 60", "closed 4008 /min {{pod}}")],
              "short", g(18, 30, 6, 8), th=thresholds(("green", None), ("yellow", 10), ("red", 100))),
        row("Feeds", 38),
        panel("state-timeline", "Feed up/down", "tickgate_feed_up per pod and feed: green is live, red is down (connecting or reconnecting).",
              [(f"max by (pod, feed) (tickgate_feed_up{{{SEL}}})", "{{pod}} {{feed}}")], "none", g(0, 39, 12, 8),
              th=thresholds(("red", None), ("green", 1)),
              extra_defaults={"mappings": FEED_STATE_MAPPINGS},
              options={"showValue": "never", "mergeValues": True, "rowHeight": 0.9, "alignValue": "left",
                       "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
                       "tooltip": {"mode": "single", "sort": "none"}}),
        panel("timeseries", "Feed lag", "Source timestamp to gateway receipt, p50 and p99 per feed. Includes clock skew between the source and the pod.",
              quantiles("tickgate_feed_lag_seconds", ["feed"], [0.5, 0.99], SEL, "{{feed}} "),
              "s", g(12, 39, 12, 8), th=thresholds(("green", None), ("yellow", 0.5), ("red", 2))),
        panel("timeseries", "Seconds since last tick", "Age of each feed's latest tick. TickgateFeedStale fires when it stays above 30 s.",
              [(f"max by (pod, feed) (tickgate_feed_last_tick_age_seconds{{{SEL}}})", "{{pod}} {{feed}}")],
              "s", g(0, 47, 12, 8), th=thresholds(("green", None), ("yellow", 5), ("red", 30))),
        panel("timeseries", "Ticks received /s", "Ticks accepted from each feed per second, summed over pods.",
              [(f"sum by (feed) (rate(tickgate_ticks_received_total{{{SEL}}}[{RI}]))", "{{feed}}")],
              "ops", g(12, 47, 12, 8)),
        row("Resources", 55),
        panel("timeseries", "Memory per pod", "Container working set (from the kubelet's cAdvisor metrics, not the gateway).",
              [(f"sum by (pod) (container_memory_working_set_bytes{{{container}}})", "{{pod}}")],
              "bytes", g(0, 56, 8, 8)),
        panel("timeseries", "CPU per pod", "CPU cores used by the container (kubelet cAdvisor). There is no CPU limit; compare with the request (HPA target 60 %).",
              [(f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{container}}}[{RI}]))", "{{pod}}")],
              "short", g(8, 56, 8, 8)),
        panel("timeseries", "Memory per connection", "Working set divided by open connections, per pod: the cost of one client.",
              [(f"sum by (pod) (container_memory_working_set_bytes{{{container}}}) / sum by (pod) (tickgate_connections{{{SEL}}})", "{{pod}}")],
              "bytes", g(16, 56, 8, 8)),
    ]
    return dashboard(
        "tickgate-overview",
        "tickgate / Overview",
        "Who is connected, how fresh the data is, who is slow, which feed is sick. Panels are described in docs/metrics.md.",
        panels,
        variables(),
        [link("tickgate / Feeds", "tickgate-feeds")],
    )


# --- feeds --------------------------------------------------------------------


def feeds():
    fsel = f'{SEL}, feed=~"$feed"'
    feed_var = {
        "type": "query",
        "name": "feed",
        "label": "Feed",
        "datasource": DS,
        "definition": f"label_values(tickgate_feed_up{{{SEL}}}, feed)",
        "query": {"query": f"label_values(tickgate_feed_up{{{SEL}}}, feed)", "refId": "feed-variable"},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "regex": "",
        "hide": 0,
        "options": [],
    }
    panels = [
        panel("state-timeline", "Feed up/down", "tickgate_feed_up per pod and feed: green is live, red is down. TickgateFeedDown fires after one minute down.",
              [(f"max by (pod, feed) (tickgate_feed_up{{{fsel}}})", "{{pod}} {{feed}}")], "none", g(0, 0, 24, 6),
              th=thresholds(("red", None), ("green", 1)),
              extra_defaults={"mappings": FEED_STATE_MAPPINGS},
              options={"showValue": "never", "mergeValues": True, "rowHeight": 0.9, "alignValue": "left",
                       "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
                       "tooltip": {"mode": "single", "sort": "none"}}),
        panel("timeseries", "Ticks received /s", "Ticks accepted per feed and pod.",
              [(f"sum by (pod, feed) (rate(tickgate_ticks_received_total{{{fsel}}}[{RI}]))", "{{pod}} {{feed}}")],
              "ops", g(0, 6, 12, 8)),
        panel("timeseries", "Ticks rejected /s", "Ticks refused per feed and reason (invalid fields, symbol table full, …).",
              [(f"sum by (feed, reason) (rate(tickgate_ticks_rejected_total{{{fsel}}}[{RI}]))", "{{feed}} {{reason}}")],
              "ops", g(12, 6, 12, 8), th=thresholds(("green", None), ("red", 1))),
        panel("timeseries", "Feed lag p50 / p90 / p99", "Source timestamp to gateway receipt per feed. Includes clock skew; TickgateFeedLagHigh fires when p99 stays above 2 s.",
              quantiles("tickgate_feed_lag_seconds", ["feed"], [0.5, 0.9, 0.99], fsel, "{{feed}} "),
              "s", g(0, 14, 12, 8), th=thresholds(("green", None), ("yellow", 0.5), ("red", 2))),
        panel("heatmap", "Feed lag distribution", "Ticks per lag bucket over time, all selected feeds.",
              [(f"sum by (le) (increase(tickgate_feed_lag_seconds_bucket{{{fsel}}}[{RI}]))", "{{le}}", "heatmap")],
              "s", g(12, 14, 12, 8),
              options={"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1,
                       "color": {"mode": "scheme", "scheme": "Oranges", "fill": "dark-orange", "scale": "exponential", "exponent": 0.5, "steps": 64, "reverse": False},
                       "rowsFrame": {"layout": "auto"}, "tooltip": {"mode": "single", "yHistogram": False},
                       "legend": {"show": True}, "exemplars": {"color": "rgba(255,0,255,0.7)"},
                       "filterValues": {"le": 1e-9}, "showValue": "never"}),
        panel("timeseries", "Seconds since last tick", "Age of each feed's latest tick; TickgateFeedStale fires above 30 s for 2 minutes.",
              [(f"max by (pod, feed) (tickgate_feed_last_tick_age_seconds{{{fsel}}})", "{{pod}} {{feed}}")],
              "s", g(0, 22, 12, 8), th=thresholds(("green", None), ("yellow", 5), ("red", 30))),
        panel("timeseries", "Rejected share", "rejected / (accepted + rejected) per feed.",
              [(f"sum by (feed) (rate(tickgate_ticks_rejected_total{{{fsel}}}[{RI}]))"
                f" / (sum by (feed) (rate(tickgate_ticks_rejected_total{{{fsel}}}[{RI}]))"
                f" + sum by (feed) (rate(tickgate_ticks_received_total{{{fsel}}}[{RI}])))", "{{feed}}")],
              "percentunit", g(12, 22, 12, 8), th=thresholds(("green", None), ("red", 0.01)),
              extra_defaults={"min": 0}),
        panel("timeseries", "Symbols known", "Symbols in the snapshot store per pod (bounded by limits.max_symbols).",
              [(f"max by (pod) (tickgate_symbols{{{SEL}}})", "{{pod}}")], "short", g(0, 30, 24, 6)),
        panel("timeseries", "Status messages to clients /min", "status messages sent on freshness transitions (live, stale, down), one per client and change, summed over pods. A burst of down then live is a feed reconnect or failover as clients saw it.",
              [(f"sum by (state) (rate(tickgate_status_messages_total{{{SEL}}}[{RI}])) * 60", "{{state}}")],
              "short", g(0, 36, 12, 6)),
        panel("timeseries", "Venue events /min", "Halts, resumptions, trade corrections and cancels from the venues, by kind and outcome (applied: clients saw a change; ignored: a repeated status, an older or unknown trade), summed over pods. See docs/feeds.md, Halts, corrections and cancels.",
              [(f"sum by (kind, outcome) (rate(tickgate_venue_events_total{{{SEL}}}[{RI}])) * 60", "{{kind}} {{outcome}}")],
              "short", g(12, 36, 12, 6)),
    ]
    return dashboard(
        "tickgate-feeds",
        "tickgate / Feeds",
        "Per-feed health: liveness, tick rates, rejections, lag. Described in docs/metrics.md.",
        panels,
        variables([feed_var]),
        [link("tickgate / Overview", "tickgate-overview")],
    )


DASHBOARDS = {"tickgate-overview.json": overview, "tickgate-feeds.json": feeds}


def render(build):
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, build in DASHBOARDS.items():
        path = OUT / name
        text = render(build)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale dashboards (run python3 grafana/build_dashboards.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
