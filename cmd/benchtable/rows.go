package main

import "github.com/syndb/federation/internal/benchtable"

// fig is a benchtable.Figure.
func fig(bench, unit string) benchtable.Figure { return benchtable.Figure{Bench: bench, Unit: unit} }

// base is a pointer to a baseline figure.
func base(bench, unit string) *benchtable.Figure { f := fig(bench, unit); return &f }

// rows are the project's benchmark figures, each beside its baseline from
// the same run, in the order `go tool task bench` runs them.
var rows = []benchtable.Row{
	{Label: "HealthPing over QUIC, p50", Value: fig("HealthPing/healthping", "p50-µs"),
		Base: base("HealthPing/bare-echo", "p50-µs"), BaseLabel: "bare libp2p echo, p50"},
	{Label: "HealthPing over QUIC, requests/s", Value: fig("HealthPing/healthping", "req/s"),
		Base: base("HealthPing/bare-echo", "req/s"), BaseLabel: "bare libp2p echo"},
	{Label: "registry snapshot reads", Value: fig("SnapshotReads/atomic-snapshot", "reads/s"),
		Base: base("SnapshotReads/rwmutex-map", "reads/s"), BaseLabel: "RWMutex map"},

	{Label: "Flight DoGet 10 M rows, direct gRPC", Value: fig("FlightDoGet/flight-blocks", "rows/s"),
		Base: base("FlightDoGet/native-http", "rows/s"), BaseLabel: "ClickHouse `FORMAT Native` export",
		Goal: benchtable.Goal{MinRatio: 0.8}},
	{Label: "Flight DoGet 10 M rows, over libp2p (QUIC, the default)", Value: fig("FlightDoGet/flight-libp2p", "rows/s"),
		Base: base("FlightDoGet/native-http", "rows/s"), BaseLabel: "ClickHouse `FORMAT Native` export",
		Goal: benchtable.Goal{MinRatio: 0.6}},
	{Label: "Flight DoGet 10 M rows, over libp2p (TCP + TLS 1.3, `SYNDB_P2P_PREFER=tcp`)", Value: fig("FlightDoGet/flight-libp2p-tcp", "rows/s"),
		Base: base("FlightDoGet/native-http", "rows/s"), BaseLabel: "ClickHouse `FORMAT Native` export",
		Goal: benchtable.Goal{MinRatio: 0.6}},
	{Label: "Flight DoGet 10 M rows over libp2p, Go CPU per read, TCP + TLS 1.3", Value: fig("FlightDoGet/flight-libp2p-tcp", "go-cpu-s/op"),
		Base: base("FlightDoGet/flight-libp2p", "go-cpu-s/op"), BaseLabel: "the same over QUIC"},
	{Label: "Flight DoGet 10 M rows, rows scanned one by one", Value: fig("FlightDoGet/flight-scan", "rows/s"),
		Base: base("FlightDoGet/native-http", "rows/s"), BaseLabel: "ClickHouse `FORMAT Native` export"},
	{Label: "Flight DoGet 10 M rows, bytes", Value: fig("FlightDoGet/flight-blocks", "MB/s"),
		Base: base("FlightDoGet/tcp-baseline", "MB/s"), BaseLabel: "raw TCP copy of the same bytes"},
	{Label: "ClickHouse native protocol, blocks decoded and dropped", Value: fig("FlightDoGet/native-chgo", "rows/s"),
		Base: base("FlightDoGet/native-http", "rows/s"), BaseLabel: "ClickHouse `FORMAT Native` export"},

	{Label: "schema sync, 10 nodes", Value: fig("SchemaSyncFanout/nodes=10", "sync-s"),
		Base: base("SchemaSyncFanout/nodes=10", "direct-s"), BaseLabel: "direct loop"},
	{Label: "schema sync, 100 nodes", Value: fig("SchemaSyncFanout/nodes=100", "sync-s"),
		Base: base("SchemaSyncFanout/nodes=100", "direct-s"), BaseLabel: "direct loop", Goal: benchtable.Goal{MaxRatio: 2}},
	{Label: "schema sync, 1000 nodes", Value: fig("SchemaSyncFanout/nodes=1000", "sync-s"),
		Base: base("SchemaSyncFanout/nodes=1000", "direct-s"), BaseLabel: "direct loop", Goal: benchtable.Goal{MaxRatio: 2}},
	{Label: "health sweep, 100 nodes", Value: fig("HealthSweep/nodes=100", "sweep-ms"),
		Base: base("HealthSweep/nodes=100", "direct-ms"), BaseLabel: "direct pings"},
	{Label: "health sweep, 1000 nodes", Value: fig("HealthSweep/nodes=1000", "sweep-ms"),
		Base: base("HealthSweep/nodes=1000", "direct-ms"), BaseLabel: "direct pings", Goal: benchtable.Goal{MaxValue: 1000}},
	{Label: "health sweep, history events per sweep, 100 nodes", Value: fig("HealthSweep/nodes=100", "events/sweep")},
	{Label: "health sweep, history events per sweep, 1000 nodes", Value: fig("HealthSweep/nodes=1000", "events/sweep"),
		Base: base("HealthSweep/nodes=100", "events/sweep"), BaseLabel: "events per sweep, 100 nodes", Goal: benchtable.Goal{MaxRatio: 1}},

	{Label: "`/v1/query` small aggregate, p50", Value: fig("Query/aggregate", "api-p50-ms"),
		Base: base("Query/aggregate", "node-p50-ms"), BaseLabel: "the node's ClickHouse straight"},
	{Label: "`/v1/query` small aggregate through the gateway, median", Value: fig("FederatedQueryDataPlane", "libp2p-median-ms"),
		Base: base("FederatedQueryDataPlane", "direct-median-ms"), BaseLabel: "direct `remote()`", Goal: benchtable.Goal{MaxRatio: 1.3}},
	{Label: "one node's small aggregate by `remote()` through the gateway, median", Value: fig("CHGateway", "gateway-median-ms"),
		Base: base("CHGateway", "direct-median-ms"), BaseLabel: "`remote()` straight to the node's ClickHouse"},
	{Label: "`/v1/query` streaming 10 M rows", Value: fig("Query/stream", "rows/s")},
	{Label: "`/v1/query` streaming 10 M rows, API peak RSS", Value: fig("Query/stream", "rss-peak-MB"),
		Base: base("Query/stream", "rss-before-MB"), BaseLabel: "API RSS before"},
	{Label: "ETL load of 2 M rows", Value: fig("Etl/rows=2000000", "rows/s")},
	{Label: "ETL load of 2 M rows, worker peak RSS", Value: fig("Etl/rows=2000000", "worker-rss-peak-MB"),
		Base: base("Etl/rows=2000000", "worker-rss-before-MB"), BaseLabel: "worker RSS before"},

	{Label: "federated aggregate, 2 × 10 M rows", Value: fig("FederatedSQL/aggregate", "node-ms"),
		Base: base("FederatedSQL/aggregate", "floor-ms"), BaseLabel: "the statement straight on the nodes"},
	{Label: "federated join, 2 × 10 M rows", Value: fig("FederatedSQL/join", "node-ms"),
		Base: base("FederatedSQL/join", "floor-ms"), BaseLabel: "the statement straight on the nodes"},
	{Label: "federated ORDER BY … LIMIT 10", Value: fig("FederatedSQL/top10", "node-ms"),
		Base: base("FederatedSQL/top10", "floor-ms"), BaseLabel: "the statement straight on the nodes"},
	{Label: "federated aggregate, bytes from the nodes", Value: fig("FederatedSQL/aggregate", "node-B"),
		Base: base("FederatedSQL/aggregate", "fleet-B"), BaseLabel: "fleet scope (rows to the hub)"},

	{Label: "`GET /v1/federation/clusters`, key cache on", Value: fig("AuthCache", "clusters-cache-on-req/s"),
		Base: base("AuthCache", "healthz-cache-on-req/s"), BaseLabel: "`GET /healthz` (no key)", Goal: benchtable.Goal{MinRatio: 0.5}},
	{Label: "`GET /v1/federation/clusters`, key cache off", Value: fig("AuthCache", "clusters-cache-off-req/s"),
		Base: base("AuthCache", "healthz-cache-off-req/s"), BaseLabel: "`GET /healthz` (no key)"},
}
