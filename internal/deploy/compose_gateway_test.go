package deploy

import (
	"encoding/xml"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
)

// gatewayUsersFile is the part of the gateway user's users.d file the test reads.
type gatewayUsersFile struct {
	Profiles struct {
		Profiles []struct {
			XMLName  xml.Name
			Settings []xmlSetting `xml:",any"`
		} `xml:",any"`
	} `xml:"profiles"`
	Users struct {
		Users []struct {
			XMLName  xml.Name
			Password struct {
				FromEnv string `xml:"from_env,attr"`
			} `xml:"password"`
			Networks  []string `xml:"networks>ip"`
			Profile   string   `xml:"profile"`
			Databases []string `xml:"allow_databases>database"`
		} `xml:",any"`
	} `xml:"users"`
}

// TestComposeSQLOverLibp2p: the API's gateways are the worker's, with one
// password; each lab's ClickHouse has the read-only, loopback-only gateway
// user of the warehouse database that its agent logs in as, with the dev
// stack's profile (its limits).
func TestComposeSQLOverLibp2p(t *testing.T) {
	t.Parallel()
	p := load(t)
	api, err := p.GetService("api")
	require.NoError(t, err)
	worker, err := p.GetService("worker")
	require.NoError(t, err)
	gwHost, gwPort, err := net.SplitHostPort(env(t, api, "SYNDB_QUERY_GATEWAYS"))
	require.NoError(t, err)
	require.Equal(t, "worker", gwHost)
	_, listenPort, err := net.SplitHostPort(env(t, worker, "SYNDB_GATEWAY_ADDR"))
	require.NoError(t, err)
	require.Equal(t, listenPort, gwPort, "the API dials the port the worker's gateway listens on")
	require.Contains(t, worker.Expose, gwPort)
	require.Equal(t, "gateway-secret", env(t, api, "SYNDB_GATEWAY_PASSWORD"))
	require.Equal(t, env(t, api, "SYNDB_GATEWAY_PASSWORD"), env(t, worker, "SYNDB_GATEWAY_PASSWORD"))

	for _, lab := range []string{"lab-a", "lab-b"} {
		agent, err := p.GetService(lab)
		require.NoError(t, err)
		ch, err := p.GetService(lab + "-clickhouse")
		require.NoError(t, err)
		var source string
		for _, v := range ch.Volumes {
			if v.Target == "/etc/clickhouse-server/users.d/syndb_gateway.xml" {
				source = v.Source
				require.True(t, v.ReadOnly, "the users file is mounted read-only")
			}
		}
		require.NotEmpty(t, source, "%s's ClickHouse mounts the gateway user's users.d file", lab)
		raw, err := os.ReadFile(source)
		require.NoError(t, err)
		var f gatewayUsersFile
		require.NoError(t, xml.Unmarshal(raw, &f))
		require.Len(t, f.Users.Users, 1)
		u := f.Users.Users[0]
		require.Equal(t, env(t, agent, "SYNDB_CLICKHOUSE_GATEWAY_USER"), u.XMLName.Local, "the agent logs in as the user the file creates")
		require.Equal(t, "SYNDB_CLICKHOUSE_GATEWAY_PASSWORD", u.Password.FromEnv)
		require.Equal(t, "lab-secret", env(t, agent, "SYNDB_CLICKHOUSE_GATEWAY_PASSWORD"))
		require.Equal(t, env(t, agent, "SYNDB_CLICKHOUSE_GATEWAY_PASSWORD"), env(t, ch, "SYNDB_CLICKHOUSE_GATEWAY_PASSWORD"))
		require.ElementsMatch(t, []string{"127.0.0.1", "::1"}, u.Networks)
		db := defaults(t, config.Node{})["SYNDB_CLICKHOUSE_DATABASE"]
		if v, ok := agent.Environment["SYNDB_CLICKHOUSE_DATABASE"]; ok && v != nil {
			db = *v
		}
		require.Equal(t, []string{db}, u.Databases, "the user reads only the warehouse database")
		require.Len(t, f.Profiles.Profiles, 1)
		prof := f.Profiles.Profiles[0]
		require.Equal(t, u.Profile, prof.XMLName.Local)
		got := map[string]string{}
		for _, s := range prof.Settings {
			got[s.XMLName.Local] = strings.TrimSpace(s.Value)
		}
		want := map[string]string{}
		for _, s := range devstack.GatewayProfile {
			want[s.Name] = s.Value
		}
		require.Equal(t, want, got, "the compose profile is the dev stack's")
		require.Equal(t, "1", got["readonly"], "readonly=1: the user keeps its limits whatever the hub sends")
	}
}
