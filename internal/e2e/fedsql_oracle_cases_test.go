package e2e

// oracleKind names how a case's expected answer is computed.
type oracleKind string

const (
	// perNodeOracle runs the statement straight on each node's warehouse and tags
	// each row with the node's name (as its first column).
	perNodeOracle oracleKind = "per_node"
	// fleetOracle runs the statement once over the fleet oracle: a database
	// holding the union of both nodes' rows, each with its node in _node.
	fleetOracle oracleKind = "fleet"
)

// allJoin is JOIN as the oracle writes it: ClickHouse 18.16 refuses a JOIN
// without ANY or ALL unless join_default_strictness is set, and
// clickhouse-go sends a server this old only integer and boolean settings.
const allJoin = "ALL INNER JOIN"

// oracleCase is one question asked through /v1/query and of its oracle.
type oracleCase struct {
	name   string
	sql    string
	oracle oracleKind
	// direct is the statement the oracle runs when it is not sql: for
	// per_node, sql without _node (the rows are tagged with it); for fleet,
	// sql naming the oracle tables' _node column where the answer has it.
	direct string
	match  match
	// within, when set, replaces the comparison with the oracle: the answer
	// must lie between the nodes' own and near the fleet oracle's (see
	// requireWithin).
	within bool
}

// nodeFirst starts the fleet oracle's select list where the answer has
// plain rows: they say which node they came from, first.
const nodeFirst = "_node, "

// inOrder compares rows in order.
var inOrder = match{ordered: true}

// oracleCases are the questions of TestFedSQLOracle. Aggregates without
// _node are the fleet's (the fleet oracle); GROUP BY _node and plain rows
// are each node's (the per-node oracle, rows tagged with the node first).
// Joins and IN (subquery) run per node; their aggregates equal the fleet
// oracle because seeded ids (UUIDs derived from a node's dataset ids) never
// collide across nodes, which the test checks first. Seeded vesicles and
// pre-synapses both have neurons as parents, so the IN case matches them on
// parent_id. Only datasets has an array column (genetic_manipulations) and a
// date (created_at): the ARRAY JOIN and date cases read it.
var oracleCases = []oracleCase{
	{name: "count_avg_by_dataset", oracle: fleetOracle,
		sql: "SELECT dataset_id, count(), avg(voxel_volume) FROM neuron GROUP BY dataset_id"},
	{name: "quantile_0.9_cleft_width", oracle: fleetOracle, within: true,
		sql: "SELECT quantile(0.9)(cleft_width) FROM synapse"},
	{name: "quantile_exact_median_cleft_width", oracle: fleetOracle,
		sql: "SELECT quantileExact(0.5)(cleft_width) AS median_cleft FROM synapse"},
	{name: "uniq_exact_pre_by_transmitter", oracle: fleetOracle,
		sql: "SELECT neurotransmitter, uniqExact(pre_id) FROM synapse GROUP BY neurotransmitter"},
	{name: "top10_neurons_by_outgoing_synapses_join", oracle: fleetOracle, match: inOrder,
		sql: "SELECT n.cid, count() AS c FROM synapse AS s JOIN neuron AS n ON s.pre_id = n.cid " +
			"GROUP BY n.cid ORDER BY c DESC, n.cid LIMIT 10",
		direct: "SELECT n.cid, count() AS c FROM synapse AS s " + allJoin + " neuron AS n ON s.pre_id = n.cid " +
			"GROUP BY n.cid ORDER BY c DESC, n.cid LIMIT 10"},
	{name: "vesicles_in_neurons_with_large_pre_synapses_in_subquery", oracle: fleetOracle,
		sql: "SELECT count() FROM vesicle WHERE parent_id IN (SELECT parent_id FROM pre_synapse WHERE voxel_volume > 0.5)"},
	{name: "with_constant_countif", oracle: fleetOracle,
		sql: "WITH 0.5 AS t SELECT countIf(voxel_volume > t) FROM neuron"},
	{name: "array_map_lambda_rows", oracle: perNodeOracle,
		sql: "SELECT cid, arrayMap(x -> x * 2, [voxel_volume, voxel_radius]) AS doubled FROM neuron"},
	{name: "top5_largest_neurons", oracle: fleetOracle, match: inOrder,
		sql:    "SELECT cid, voxel_volume FROM neuron ORDER BY voxel_volume DESC, cid LIMIT 5",
		direct: "SELECT " + nodeFirst + "cid, voxel_volume FROM neuron ORDER BY voxel_volume DESC, cid LIMIT 5"},
	{name: "group_by_node", oracle: perNodeOracle,
		sql:    "SELECT _node, count() AS n, sum(terminal_count) AS terminals FROM neuron GROUP BY _node",
		direct: "SELECT count() AS n, sum(terminal_count) AS terminals FROM neuron"},
	{name: "settings_max_threads", oracle: fleetOracle,
		sql: "SELECT neuron_type, count() AS n FROM neuron GROUP BY neuron_type SETTINGS max_threads = 2"},
	{name: "having_on_fleet_counts", oracle: fleetOracle,
		sql: "SELECT neuron_type, count() AS n FROM neuron GROUP BY neuron_type HAVING count() > 50"},
	{name: "limit_by_dataset", oracle: fleetOracle, match: inOrder,
		sql: "SELECT dataset_id, cid, voxel_volume FROM neuron ORDER BY dataset_id, voxel_volume DESC, cid LIMIT 2 BY dataset_id",
		direct: "SELECT " + nodeFirst + "dataset_id, cid, voxel_volume FROM neuron " +
			"ORDER BY dataset_id, voxel_volume DESC, cid LIMIT 2 BY dataset_id"},
	{name: "distinct_types_per_node", oracle: perNodeOracle,
		sql:    "SELECT DISTINCT _node, neuron_type FROM neuron",
		direct: "SELECT DISTINCT neuron_type FROM neuron"},
	{name: "subquery_in_from", oracle: fleetOracle,
		sql: "SELECT neuron_type, avg(v) AS mean_v FROM (SELECT neuron_type, voxel_volume * 1000 AS v FROM neuron) GROUP BY neuron_type"},
	{name: "union_all_counts", oracle: fleetOracle,
		sql: "SELECT 'neuron' AS kind, count() AS n FROM neuron UNION ALL SELECT 'synapse' AS kind, count() AS n FROM synapse"},
	{name: "count_distinct", oracle: fleetOracle,
		sql: "SELECT count(DISTINCT parent_id) AS neurons_with_vesicles FROM vesicle"},
	{name: "arg_max", oracle: fleetOracle,
		sql: "SELECT argMax(cid, voxel_volume) AS biggest, max(voxel_volume) AS v FROM neuron"},
	{name: "top_k_volume_buckets", oracle: fleetOracle, match: match{sets: []int{0}},
		sql: "SELECT topK(3)(toUInt32(floor(voxel_volume * 4))) AS buckets FROM neuron"},
	{name: "min_max_dates", oracle: fleetOracle,
		sql: "SELECT min(created_at) AS first, max(created_at) AS last FROM datasets"},
	{name: "where_to_year", oracle: fleetOracle,
		sql: "SELECT animal, count() AS n FROM datasets WHERE toYear(created_at) >= 2020 GROUP BY animal"},
	{name: "array_join_genetic_manipulations", oracle: perNodeOracle,
		sql: "SELECT dataset_id, gm FROM datasets ARRAY JOIN genetic_manipulations AS gm"},
	{name: "prewhere", oracle: fleetOracle,
		sql: "SELECT count() AS n, sum(voxel_volume) AS v FROM neuron PREWHERE neuron_type = 'pyramidal' WHERE voxel_volume > 0.2"},
	{name: "plain_rows_filtered", oracle: perNodeOracle,
		sql: "SELECT cid, neuron_type, terminal_count FROM neuron WHERE terminal_count > 150"},
	{name: "count_synapses", oracle: fleetOracle,
		sql: "SELECT count() AS n FROM synapse"},
	{name: "cleft_by_transmitter_ordered", oracle: fleetOracle, match: inOrder,
		sql: "SELECT neurotransmitter, count() AS n, avg(cleft_width) AS w FROM synapse GROUP BY neurotransmitter ORDER BY neurotransmitter"},
	{name: "vesicles_by_node_and_transmitter", oracle: perNodeOracle, match: inOrder,
		sql:    "SELECT _node, neurotransmitter, count() AS n FROM vesicle GROUP BY _node, neurotransmitter ORDER BY _node, neurotransmitter",
		direct: "SELECT neurotransmitter, count() AS n FROM vesicle GROUP BY neurotransmitter ORDER BY neurotransmitter"},
	{name: "conditional_aggregates", oracle: fleetOracle,
		sql: "SELECT neuron_type, sumIf(terminal_count, voxel_volume > 0.5) AS big_terminals, " +
			"avgIf(voxel_volume, terminal_count > 100) AS v FROM neuron GROUP BY neuron_type"},
	{name: "datasets_and_neurons", oracle: fleetOracle,
		sql: "SELECT uniqExact(dataset_id) AS datasets, count() AS neurons FROM neuron"},
	{name: "variance", oracle: fleetOracle,
		sql: "SELECT varPop(cleft_width) AS v, stddevSamp(cleft_width) AS s FROM synapse"},
	{name: "correlation", oracle: fleetOracle,
		sql: "SELECT corr(voxel_volume, mesh_surface_area) AS r FROM neuron"},
	{name: "join_rows_per_node", oracle: perNodeOracle,
		sql:    "SELECT s.cid, n.neuron_type FROM synapse AS s JOIN neuron AS n ON s.post_id = n.cid WHERE s.cleft_width > 18",
		direct: "SELECT s.cid, n.neuron_type FROM synapse AS s " + allJoin + " neuron AS n ON s.post_id = n.cid WHERE s.cleft_width > 18"},
	{name: "in_literal_list", oracle: fleetOracle,
		sql: "SELECT count() AS n FROM synapse WHERE neurotransmitter IN ('GABA', 'glutamate')"},
	{name: "cleft_spread", oracle: fleetOracle,
		sql: "SELECT max(cleft_width) - min(cleft_width) AS spread FROM synapse"},
	{name: "size_classes_multi_if", oracle: fleetOracle,
		sql: "SELECT multiIf(voxel_volume < 0.1, 'small', voxel_volume < 1, 'medium', 'large') AS size, count() AS n " +
			"FROM neuron GROUP BY size"},
	{name: "offset_over_fleet", oracle: fleetOracle, match: inOrder,
		sql:    "SELECT cid, terminal_count FROM neuron ORDER BY terminal_count DESC, cid LIMIT 3 OFFSET 2",
		direct: "SELECT " + nodeFirst + "cid, terminal_count FROM neuron ORDER BY terminal_count DESC, cid LIMIT 3 OFFSET 2"},
	{name: "quantiles_exact_rounded_with_array_map", oracle: fleetOracle,
		sql: "SELECT arrayMap(x -> round(x, 6), quantilesExact(0.25, 0.5, 0.75)(voxel_volume)) AS q FROM neuron"},
}
