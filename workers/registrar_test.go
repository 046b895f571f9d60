package workers

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckDataAddrs(t *testing.T) {
	t.Parallel()
	ips := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		addrs    dataAddrs
		origins  []netip.Addr
		relayed  bool
		dataHost string
		err      string // "" when accepted
	}{
		{"same host", dataAddrs{ClickHouse: "10.0.0.2:9000", Flight: "10.0.0.2:50052"}, ips("10.0.0.2"), false, "", ""},
		{"loopback to loopback", dataAddrs{ClickHouse: "127.0.0.1:9000"}, ips("127.0.0.1"), false, "", ""},
		{"other host", dataAddrs{ClickHouse: "127.0.0.1:19000"}, ips("10.0.0.2"), false, "",
			"clickhouse_addr 127.0.0.1:19000 is not on the host this connection comes from (10.0.0.2)"},
		{"flight elsewhere", dataAddrs{ClickHouse: "10.0.0.2:9000", Flight: "10.0.0.3:50052"}, ips("10.0.0.2"), false, "",
			"flight_addr 10.0.0.3:50052 is not on the host"},
		{"any of several connections", dataAddrs{ClickHouse: "10.0.0.3:9000"}, ips("10.0.0.2", "10.0.0.3"), false, "", ""},
		{"hostname refused", dataAddrs{ClickHouse: "lab-a.example.org:9000"}, ips("10.0.0.2"), false, "",
			"needs the data host an admin sets at enrolment"},
		{"localhost refused", dataAddrs{ClickHouse: "localhost:9000"}, ips("127.0.0.1"), false, "", "is not on the host"},
		{"hostname as data host", dataAddrs{ClickHouse: "Lab-A.example.org:9000"}, ips("10.0.0.2"), false, "lab-a.example.org", ""},
		{"data host IP", dataAddrs{ClickHouse: "192.0.2.7:9000"}, ips("10.0.0.2"), false, "192.0.2.7", ""},
		{"neither", dataAddrs{ClickHouse: "192.0.2.8:9000"}, ips("10.0.0.2"), false, "192.0.2.7",
			"not on the host this connection comes from (10.0.0.2) nor on the data host set at enrolment (192.0.2.7)"},
		{"IPv6 same host", dataAddrs{ClickHouse: "[2001:db8::2]:9000"}, ips("2001:db8::2"), false, "", ""},
		{"IPv6 other host", dataAddrs{ClickHouse: "[2001:db8::3]:9000"}, ips("2001:db8::2"), false, "", "not on the host"},
		{"IPv6 spelled otherwise", dataAddrs{ClickHouse: "[2001:0db8:0:0::2]:9000"}, ips("2001:db8::2"), false, "", ""},
		{"IPv4-mapped IPv6", dataAddrs{ClickHouse: "[::ffff:10.0.0.2]:9000"}, ips("10.0.0.2"), false, "", ""},
		{"IPv6 loopback is not IPv4 loopback", dataAddrs{ClickHouse: "[::1]:9000"}, ips("127.0.0.1"), false, "", "not on the host"},
		{"relayed without data host", dataAddrs{ClickHouse: "10.0.0.2:9000"}, nil, true, "",
			"cannot be checked: this connection is relayed"},
		{"relayed with data host", dataAddrs{ClickHouse: "10.0.0.2:9000"}, nil, true, "10.0.0.2", ""},
		{"relayed, elsewhere", dataAddrs{ClickHouse: "10.0.0.9:9000"}, nil, true, "10.0.0.2", "nor on the data host set at enrolment (10.0.0.2)"},
		{"relayed, no data addresses", dataAddrs{}, nil, true, "", ""},
		{"no port", dataAddrs{ClickHouse: "10.0.0.2"}, ips("10.0.0.2"), false, "", "is not host:port"},
		{"unspecified", dataAddrs{ClickHouse: "0.0.0.0:9000"}, ips("10.0.0.2"), false, "", "not on the host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkDataAddrs(tc.addrs, tc.origins, tc.relayed, tc.dataHost)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}
