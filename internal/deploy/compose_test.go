package deploy

import (
	"encoding/xml"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
)

// defaults maps every SYNDB_* variable the components' configs read to its
// default (all of them when none is given).
func defaults(t *testing.T, components ...any) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for f := range rt.Fields() {
			if name, ok := f.Tag.Lookup("env"); ok {
				out[name] = f.Tag.Get("envDefault")
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == rt.PkgPath() {
				walk(f.Type)
			}
		}
	}
	if len(components) == 0 {
		components = []any{config.API{}, config.Worker{}, config.Node{}}
	}
	for _, v := range components {
		walk(reflect.TypeOf(v))
	}
	require.NotEmpty(t, out)
	return out
}

func load(t *testing.T) *types.Project {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	root := filepath.Join(wd, "..", "..")
	p, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		Environment: types.Mapping{"SYNDB_HUB_ADDR": "/dns4/worker/tcp/4001/p2p/12D3KooWTest", "SYNDB_P2P_PSK": testPSK,
			"SYNDB_CLICKHOUSE_QUERY_PASSWORD": "query-secret", "SYNDB_GATEWAY_PASSWORD": "gateway-secret", "SYNDB_LAB_GATEWAY_PASSWORD": "lab-secret"},
	}, func(o *loader.Options) { o.SetProjectName("syndb", true) })
	require.NoError(t, err)
	return p
}

// testPSK is a private-network key given to the compose file.
const testPSK = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

var portRe = regexp.MustCompile(`(?:[:/])(\d{2,5})(?:/|$|\?)`)

// port extracts the port of a host:port, URL or multiaddr.
func port(t *testing.T, v string) uint32 {
	t.Helper()
	m := portRe.FindStringSubmatch(v)
	require.NotNil(t, m, "no port in %q", v)
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return uint32(n)
}

// publishes reports whether s's network namespace publishes target on the
// same host port: a service with network_mode service:X is published by X.
func publishes(p *types.Project, s types.ServiceConfig, target uint32, proto string) bool {
	if owner, ok := strings.CutPrefix(s.NetworkMode, types.NetworkModeServicePrefix); ok {
		o, err := p.GetService(owner)
		if err != nil {
			return false
		}
		s = o
	}
	for _, p := range s.Ports {
		if p.Target == target && p.Published == strconv.Itoa(int(target)) && (p.Protocol == proto || (proto == "tcp" && p.Protocol == "")) {
			return true
		}
	}
	return false
}

func env(t *testing.T, s types.ServiceConfig, name string) string {
	t.Helper()
	v, ok := s.Environment[name]
	require.True(t, ok && v != nil, "service %s lacks %s", s.Name, name)
	return *v
}

func TestComposeServices(t *testing.T) {
	t.Parallel()
	p := load(t)
	for _, name := range []string{"postgres", "temporal", "temporal-ui", "clickhouse", "minio", "api", "worker",
		"lab-a-clickhouse", "lab-a", "lab-b-clickhouse", "lab-b"} {
		_, err := p.GetService(name)
		require.NoError(t, err, name)
	}
	for _, name := range []string{"api", "worker", "lab-a", "lab-b"} {
		s, err := p.GetService(name)
		require.NoError(t, err)
		require.NotNil(t, s.Build, "%s must build the syndb image", name)
	}
}

func TestComposeEnvironmentIsKnownToTheCode(t *testing.T) {
	t.Parallel()
	known := defaults(t)
	for _, s := range load(t).Services {
		for name := range s.Environment {
			if strings.HasPrefix(name, "SYNDB_") {
				_, ok := known[name]
				require.True(t, ok, "service %s sets %s, which no config struct reads", s.Name, name)
			}
		}
	}
}

func TestComposePortsMatchCodeDefaults(t *testing.T) {
	t.Parallel()
	d := defaults(t, config.API{})
	dw := defaults(t, config.Worker{})
	dn := defaults(t, config.Node{})
	p := load(t)
	cases := []struct {
		service, variable, proto string
		defaults                 map[string]string
	}{
		{"api", "SYNDB_API_ADDR", "tcp", d},
		{"worker", "SYNDB_P2P_LISTEN", "tcp", dw},
		{"clickhouse", "SYNDB_CLICKHOUSE_ADDR", "tcp", d},
		{"temporal", "SYNDB_TEMPORAL_ADDRESS", "tcp", d},
		// SYNDB_POSTGRES_DSN has no default (it holds credentials): the
		// hub's DSN is checked against the postgres service below.
		{"minio", "SYNDB_S3_ENDPOINT", "tcp", d},
		{"lab-a", "SYNDB_FLIGHT_ADDR", "tcp", dn},
		{"lab-a", "SYNDB_P2P_LISTEN", "tcp", dn},
	}
	for _, tc := range cases {
		t.Run(tc.service+"/"+tc.variable, func(t *testing.T) {
			t.Parallel()
			s, err := p.GetService(tc.service)
			require.NoError(t, err)
			want := port(t, tc.defaults[tc.variable])
			require.True(t, publishes(p, s, want, tc.proto), "%s must publish %d/%s (the default of %s)", tc.service, want, tc.proto, tc.variable)
		})
	}
	worker, err := p.GetService("worker")
	require.NoError(t, err)
	require.True(t, publishes(p, worker, 4001, "tcp"), "the hub's libp2p port (TCP: a private network)")
	require.Equal(t, port(t, dw["SYNDB_P2P_LISTEN"]), port(t, env(t, worker, "SYNDB_P2P_LISTEN")))
	api, err := p.GetService("api")
	require.NoError(t, err)
	require.Equal(t, port(t, d["SYNDB_API_ADDR"]), port(t, env(t, api, "SYNDB_API_ADDR")))
	for name, p2pPort := range map[string]uint32{"lab-a": 4002, "lab-b": 4003} {
		s, err := p.GetService(name)
		require.NoError(t, err)
		require.True(t, publishes(p, s, p2pPort, "tcp"), name)
		require.Equal(t, p2pPort, port(t, env(t, s, "SYNDB_P2P_LISTEN")), name)
	}
}

func TestComposeHubPointsAtItsServices(t *testing.T) {
	t.Parallel()
	p := load(t)
	hostOf := func(v string) (string, uint32) {
		if u, err := url.Parse(v); err == nil && u.Host != "" {
			v = u.Host
		}
		h, ps, err := net.SplitHostPort(v)
		require.NoError(t, err, v)
		n, err := strconv.Atoi(ps)
		require.NoError(t, err)
		return h, uint32(n)
	}
	exposes := func(service string, target uint32) {
		s, err := p.GetService(service)
		require.NoError(t, err, "no service %q", service)
		found := false
		for _, pc := range s.Ports {
			found = found || pc.Target == target
		}
		require.True(t, found, "service %s does not listen on %d", service, target)
	}
	for _, name := range []string{"api", "worker"} {
		s, err := p.GetService(name)
		require.NoError(t, err)
		for _, v := range []string{"SYNDB_TEMPORAL_ADDRESS", "SYNDB_POSTGRES_DSN", "SYNDB_CLICKHOUSE_ADDR"} {
			h, prt := hostOf(env(t, s, v))
			exposes(h, prt)
		}
		h, _ := hostOf(env(t, s, "SYNDB_TEMPORAL_ADDRESS"))
		require.Equal(t, "temporal", h)
		h, _ = hostOf(env(t, s, "SYNDB_POSTGRES_DSN"))
		require.Equal(t, "postgres", h)
	}
	for _, name := range []string{"lab-a", "lab-b"} {
		s, err := p.GetService(name)
		require.NoError(t, err)
		// The agent runs in its warehouse's network namespace, so both data
		// addresses it registers are on one host, the data_host it is
		// enrolled with, and the hub accepts them.
		warehouse := name + "-clickhouse"
		require.Equal(t, types.NetworkModeServicePrefix+warehouse, s.NetworkMode, "%s shares its warehouse's network", name)
		h, prt := hostOf(env(t, s, "SYNDB_CLICKHOUSE_ADDR"))
		require.Equal(t, "127.0.0.1", h, "each node uses its own warehouse, in its namespace")
		require.EqualValues(t, 9000, prt)
		h, prt = hostOf(env(t, s, "SYNDB_CLICKHOUSE_PUBLIC_ADDR"))
		require.Equal(t, warehouse, h, "the hub reaches %s's warehouse on its data host", name)
		exposes(h, prt)
		h, _ = hostOf(env(t, s, "SYNDB_FLIGHT_PUBLIC_ADDR"))
		require.Equal(t, warehouse, h, "%s's Flight address is on the same data host", name)
		require.Contains(t, env(t, s, "SYNDB_HUB_ADDR"), "/p2p/")
	}
}

// libp2pCommands are the syndb commands that run a libp2p host.
var libp2pCommands = map[string]bool{"worker": true, "node": true, "relay": true}

func TestComposeSetsOnePrivateNetworkKeyOnEveryLibp2pService(t *testing.T) {
	t.Parallel()
	p := load(t)
	var hosts []string
	for _, s := range p.Services {
		if len(s.Command) == 0 || !libp2pCommands[s.Command[0]] {
			continue
		}
		hosts = append(hosts, s.Name)
		psk := env(t, s, "SYNDB_P2P_PSK")
		require.Equal(t, testPSK, psk, "service %s takes its key from SYNDB_P2P_PSK", s.Name)
		key, err := config.DecodePSK(psk)
		require.NoError(t, err)
		require.Len(t, key, 32)
		// A private network runs over TCP only: the host drops QUIC, so a
		// peer it dials must be given a TCP address.
		if hub, ok := s.Environment["SYNDB_HUB_ADDR"]; ok && hub != nil {
			require.NotContains(t, *hub, "quic", "service %s dials the hub over QUIC, which a private network cannot use", s.Name)
		}
		listen := env(t, s, "SYNDB_P2P_LISTEN")
		require.Contains(t, listen, "/tcp/", "service %s needs a TCP listen address under a private network", s.Name)
	}
	require.ElementsMatch(t, []string{"worker", "lab-a", "lab-b"}, hosts)
}

func TestComposeRefusesToStartWithoutTheKeys(t *testing.T) {
	t.Parallel()
	wd, err := os.Getwd()
	require.NoError(t, err)
	root := filepath.Join(wd, "..", "..")
	for _, missing := range []string{"SYNDB_P2P_PSK", "SYNDB_CLICKHOUSE_QUERY_PASSWORD", "SYNDB_GATEWAY_PASSWORD", "SYNDB_LAB_GATEWAY_PASSWORD"} {
		envs := types.Mapping{"SYNDB_HUB_ADDR": "/dns4/worker/tcp/4001/p2p/12D3KooWTest", "SYNDB_P2P_PSK": testPSK,
			"SYNDB_CLICKHOUSE_QUERY_PASSWORD": "query-secret", "SYNDB_GATEWAY_PASSWORD": "gateway-secret", "SYNDB_LAB_GATEWAY_PASSWORD": "lab-secret"}
		delete(envs, missing)
		_, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
			WorkingDir:  root,
			ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
			Environment: envs,
		}, func(o *loader.Options) { o.SetProjectName("syndb", true) })
		require.ErrorContains(t, err, missing)
	}
}

// usersFile is the part of a ClickHouse users.d file the test reads.
type usersFile struct {
	Profiles struct {
		Profiles []struct {
			XMLName     xml.Name
			Settings    []xmlSetting `xml:",any"`
			Constraints struct {
				Settings []struct {
					XMLName xml.Name
					Const   *struct{} `xml:"const"`
					Min     string    `xml:"min"`
					Max     string    `xml:"max"`
				} `xml:",any"`
			} `xml:"constraints"`
		} `xml:",any"`
	} `xml:"profiles"`
	Users struct {
		Users []struct {
			XMLName  xml.Name
			Password struct {
				FromEnv string `xml:"from_env,attr"`
			} `xml:"password"`
			Profile string `xml:"profile"`
		} `xml:",any"`
	} `xml:"users"`
}

type xmlSetting struct {
	XMLName xml.Name
	Value   string `xml:",chardata"`
}

func TestComposeHubClickHouseHasTheQueryUser(t *testing.T) {
	t.Parallel()
	p := load(t)
	ch, err := p.GetService("clickhouse")
	require.NoError(t, err)
	var source string
	for _, v := range ch.Volumes {
		if v.Target == "/etc/clickhouse-server/users.d/syndb_query.xml" {
			source = v.Source
			require.True(t, v.ReadOnly, "the users file is mounted read-only")
		}
	}
	require.NotEmpty(t, source, "the hub ClickHouse mounts the query user's users.d file")
	raw, err := os.ReadFile(source)
	require.NoError(t, err)
	var f usersFile
	require.NoError(t, xml.Unmarshal(raw, &f))

	api, err := p.GetService("api")
	require.NoError(t, err)
	user := env(t, api, "SYNDB_CLICKHOUSE_QUERY_USER")
	require.Len(t, f.Users.Users, 1)
	u := f.Users.Users[0]
	require.Equal(t, user, u.XMLName.Local, "the API logs in as the user the file creates")
	require.Equal(t, "SYNDB_CLICKHOUSE_QUERY_PASSWORD", u.Password.FromEnv)
	require.Equal(t, env(t, api, "SYNDB_CLICKHOUSE_QUERY_PASSWORD"), env(t, ch, "SYNDB_CLICKHOUSE_QUERY_PASSWORD"),
		"server and API share one password")

	require.Len(t, f.Profiles.Profiles, 1)
	prof := f.Profiles.Profiles[0]
	require.Equal(t, u.Profile, prof.XMLName.Local)
	got := map[string]string{}
	for _, s := range prof.Settings {
		if s.XMLName.Local != "constraints" {
			got[s.XMLName.Local] = strings.TrimSpace(s.Value)
		}
	}
	want := map[string]string{}
	for _, s := range devstack.QueryProfile {
		want[s.Name] = s.Value
	}
	require.Equal(t, want, got, "the compose profile is the dev stack's")
	require.Equal(t, "2", got["readonly"])
	require.Equal(t, "0", got["allow_ddl"])

	// Every limit is pinned: const, or a range from 1 (0 means unlimited)
	// up to the profile's value.
	pinned := map[string]bool{}
	for _, c := range prof.Constraints.Settings {
		name := c.XMLName.Local
		pinned[name] = true
		if c.Const != nil {
			continue
		}
		require.Equal(t, "1", c.Min, name)
		require.Equal(t, got[name], c.Max, name)
	}
	for name := range want {
		require.True(t, pinned[name], "%s has no constraint", name)
	}
}
