package devstack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
)

const clickhouseBin = "/usr/sbin/clickhouse-server"

// ClickHouse is one clickhouse-server with its own config and data.
type ClickHouse struct {
	Name              string
	Dir               string
	HTTPPort, TCPPort int
	Password          string
	// Host is the address the server listens on (default 127.0.0.1);
	// ClientNets are networks, besides loopback, whose clients may log in.
	Host       string
	ClientNets []string
	// QueryUser, when set, is a read-only user with the QueryProfile
	// profile (the hub's, for federated queries), logging in from loopback
	// with QueryPassword.
	QueryUser, QueryPassword string
	// GatewayUser, when set, is a node's local user for SQL over libp2p:
	// readonly=1, database syndb only, logging in from loopback with
	// GatewayPassword (the node agent connects as it).
	GatewayUser, GatewayPassword string
	// Netns, when set, runs the server inside that network namespace (ip
	// netns), where Host is one of the namespace's own addresses.
	Netns   string
	Out     io.Writer
	LogFile string

	proc *Process
}

// Addr returns the native-protocol address.
func (c *ClickHouse) Addr() string { return net.JoinHostPort(c.host(), strconv.Itoa(c.TCPPort)) }

func (c *ClickHouse) host() string {
	if c.Host == "" {
		return "127.0.0.1"
	}
	return c.Host
}

var chConfig = template.Must(template.New("config").Parse(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{{.Dir}}/server.log</log><errorlog>{{.Dir}}/server.err.log</errorlog><size>10M</size><count>2</count></logger>
  <http_port>{{.HTTPPort}}</http_port>
  <tcp_port>{{.TCPPort}}</tcp_port>
  <listen_host>{{.Host}}</listen_host>
  <max_connections>4096</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>100</max_concurrent_queries>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <mark_cache_size>268435456</mark_cache_size>
  <path>{{.Dir}}/data/</path>
  <tmp_path>{{.Dir}}/data/tmp/</tmp_path>
  <user_files_path>{{.Dir}}/data/user_files/</user_files_path>
  <format_schema_path>{{.Dir}}/data/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
  <query_log><database>system</database><table>query_log</table><flush_interval_milliseconds>1000</flush_interval_milliseconds></query_log>
</yandex>
`))

// The hub's query user and its dev password.
const (
	QueryUser     = "syndb_query"
	QueryPassword = "syndb-query-dev"
)

// A node's gateway user and its dev password.
const (
	GatewayUser     = "syndb_gateway"
	GatewayPassword = "syndb-gateway-dev"
)

// QueryProfile is the profile of the query user, setting by setting, as
// ClickHouse 18.16 and current releases both know them: its limits, and
// every query it runs logged in system.query_log with its user. readonly=2 is the
// strictest level that allows remote() (1 forbids every table function);
// it still refuses every write, DDL and a change of readonly itself.
// 18.16 has no settings constraints, so there the user may lower or raise
// the other limits with SET; docker-compose.yml's current ClickHouse
// pins them with constraints.
var QueryProfile = []Setting{
	{"readonly", "2"},
	{"allow_ddl", "0"},
	{"max_memory_usage", "1000000000"},
	{"max_execution_time", "60"},
	{"max_result_rows", "1000000"},
	{"max_result_bytes", "1000000000"},
	{"result_overflow_mode", "throw"},
	{"max_ast_depth", "200"},
	{"max_ast_elements", "50000"},
	{"max_expanded_ast_elements", "200000"},
	{"max_query_size", "262144"},
	{"log_queries", "1"},
}

// GatewayProfile is the profile of a node's gateway user, the user the
// hub's federated queries run as on the node: readonly=1 (no writes, DDL,
// table functions or settings changes), every query logged, and each of
// the hub's queries capped on the lab at 1 GB of memory, 2 minutes and a
// share of 10,000,000 rows or 1 GB. Being readonly=1, the user keeps these
// whatever settings the hub's ClickHouse sends with the query.
var GatewayProfile = []Setting{
	{"readonly", "1"},
	{"log_queries", "1"},
	{"max_memory_usage", "1000000000"},
	{"max_execution_time", "120"},
	{"max_result_rows", "10000000"},
	{"max_result_bytes", "1000000000"},
	{"result_overflow_mode", "throw"},
}

// Setting is one ClickHouse setting of a profile.
type Setting struct{ Name, Value string }

var chUsers = template.Must(template.New("users").Parse(`<?xml version="1.0"?>
<yandex>
  <profiles>
    <default><max_memory_usage>4000000000</max_memory_usage><load_balancing>random</load_balancing></default>
{{- if .QueryUser}}
    <{{.QueryUser}}>{{range .Limits}}<{{.Name}}>{{.Value}}</{{.Name}}>{{end}}</{{.QueryUser}}>
{{- end}}
{{- if .GatewayUser}}
    <{{.GatewayUser}}>{{range .GatewayLimits}}<{{.Name}}>{{.Value}}</{{.Name}}>{{end}}</{{.GatewayUser}}>
{{- end}}
  </profiles>
  <users>
    <default><password>{{.Password}}</password><networks><ip>127.0.0.1</ip><ip>::1</ip>{{range .ClientNets}}<ip>{{.}}</ip>{{end}}</networks><profile>default</profile><quota>default</quota></default>
{{- if .QueryUser}}
    <{{.QueryUser}}><password>{{.QueryPassword}}</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>{{.QueryUser}}</profile><quota>default</quota></{{.QueryUser}}>
{{- end}}
{{- if .GatewayUser}}
    <{{.GatewayUser}}><password>{{.GatewayPassword}}</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>{{.GatewayUser}}</profile><quota>default</quota><allow_databases><database>syndb</database></allow_databases></{{.GatewayUser}}>
{{- end}}
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`))

// Start writes the config, starts the server and creates database syndb.
func (c *ClickHouse) Start(ctx context.Context) error {
	abs, err := filepath.Abs(c.Dir)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", c.Dir, err)
	}
	c.Dir = abs
	c.Host = c.host()
	if err := os.MkdirAll(filepath.Join(c.Dir, "data"), 0o755); err != nil {
		return fmt.Errorf("create clickhouse dir: %w", err)
	}
	if c.QueryUser != "" && !clickhouse.ValidIdent(c.QueryUser) {
		return fmt.Errorf("clickhouse query user %q is not a valid name", c.QueryUser)
	}
	if c.GatewayUser != "" && !clickhouse.ValidIdent(c.GatewayUser) {
		return fmt.Errorf("clickhouse gateway user %q is not a valid name", c.GatewayUser)
	}
	view := struct {
		*ClickHouse
		Limits, GatewayLimits []Setting
	}{c, QueryProfile, GatewayProfile}
	for name, tmpl := range map[string]*template.Template{"config.xml": chConfig, "users.xml": chUsers} {
		var b strings.Builder
		if err := tmpl.Execute(&b, view); err != nil {
			return fmt.Errorf("render clickhouse %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(c.Dir, name), []byte(b.String()), 0o600); err != nil {
			return fmt.Errorf("write clickhouse %s: %w", name, err)
		}
	}
	path, args := clickhouseBin, []string{"--config-file=" + filepath.Join(c.Dir, "config.xml")}
	if c.Netns != "" {
		path, args = "ip", append([]string{"netns", "exec", c.Netns, clickhouseBin}, args...)
	}
	c.proc, err = StartProcess(ctx, ProcessSpec{Name: c.Name, Path: path, Args: args, Dir: c.Dir, LogFile: c.LogFile, Out: c.Out})
	if err != nil {
		return err
	}
	if c.Netns != "" {
		return waitFor(ctx, c.proc, 2*time.Minute, c.createInNetns)
	}
	ping := "http://" + net.JoinHostPort(c.Host, strconv.Itoa(c.HTTPPort)) + "/ping"
	return waitFor(ctx, c.proc, 2*time.Minute, func(ctx context.Context) error {
		if err := httpOK(ctx, ping); err != nil {
			return err
		}
		conn, err := clickhouse.Open(ctx, config.ClickHouse{Addr: c.Addr(), User: "default", Password: c.Password, Database: "syndb"})
		if err != nil {
			return err
		}
		if err := conn.Close(); err != nil || c.QueryUser == "" {
			return err
		}
		// The query user logs in too (its profile is read at login).
		q, err := clickhouse.Dial(ctx, c.QueryConfig(), clickhouse.DefaultPool)
		if err != nil {
			return fmt.Errorf("query user %s: %w", c.QueryUser, err)
		}
		return q.Close()
	})
}

// createInNetns creates database syndb on a server in a namespace.
func (c *ClickHouse) createInNetns(ctx context.Context) error {
	conn, err := NetnsClickHouse(ctx, c.Netns, c.Addr(), c.Password, "default")
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS syndb"); err != nil {
		return fmt.Errorf("create database syndb in %s: %w", c.Netns, err)
	}
	return nil
}

// Ready checks that the server answers its HTTP ping.
func (c *ClickHouse) Ready(ctx context.Context) error {
	return httpOK(ctx, "http://"+net.JoinHostPort(c.host(), strconv.Itoa(c.HTTPPort))+"/ping")
}

// QueryConfig is the connection of the query user to database syndb.
func (c *ClickHouse) QueryConfig() config.ClickHouse {
	return config.ClickHouse{Addr: c.Addr(), User: c.QueryUser, Password: c.QueryPassword, Database: "syndb"}
}

// Stop shuts the server down.
func (c *ClickHouse) Stop(ctx context.Context) error {
	if c.proc == nil {
		return nil
	}
	return c.proc.Stop(ctx, 30*time.Second)
}

// Process returns the server process (tests stop and restart it).
func (c *ClickHouse) Process() *Process { return c.proc }

func httpOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", url, resp.StatusCode)
	}
	return nil
}
