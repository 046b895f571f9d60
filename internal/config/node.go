package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syndb/federation/internal/domain"
)

// Node configures `syndb node`, the agent that runs beside a lab's ClickHouse.
type Node struct {
	Discovery
	Name string `env:"SYNDB_NODE_NAME"`
	// Hub is the hub's libp2p multiaddr, ending in /p2p/<peer ID>. Optional:
	// without it the node finds the hub through the DHT or mDNS.
	Hub string `env:"SYNDB_HUB_ADDR"`
	// HubID pins the hub's peer ID when the hub is discovered. Without it
	// (and without Hub) the node trusts the first hub that accepts its
	// registration and answers only that one.
	HubID   string   `env:"SYNDB_HUB_ID"`
	Listen  []string `env:"SYNDB_P2P_LISTEN" envSeparator:"," envDefault:"/ip4/127.0.0.1/udp/4002/quic-v1,/ip4/127.0.0.1/tcp/4002"`
	KeyFile string   `env:"SYNDB_P2P_KEY_FILE" envDefault:"node.key"`
	// EnrollmentToken is presented on the first registration (POST
	// /v1/federation/clusters creates it); later registrations need none.
	EnrollmentToken string `env:"SYNDB_ENROLLMENT_TOKEN"`
	// PSK, 64 hex digits, must match the hub's when the hub sets one.
	PSK string `env:"SYNDB_P2P_PSK"`
	// FlightAddr is where the node's Arrow Flight server listens, and
	// FlightPublicAddr how the hub reaches it (the location in its tickets;
	// FlightAddr when empty).
	FlightAddr       string `env:"SYNDB_FLIGHT_ADDR" envDefault:"127.0.0.1:50052"`
	FlightPublicAddr string `env:"SYNDB_FLIGHT_PUBLIC_ADDR"`
	// DataPlane is how the hub reaches the Flight server: DataPlaneLibp2p
	// (over the libp2p connection, the default; "" is it too) or
	// DataPlaneDirect (over TCP to FlightPublicAddr).
	DataPlane string `env:"SYNDB_DATA_PLANE" envDefault:"libp2p"`
	// FlightTLSCert and FlightTLSKey are PEM files (both or neither): with
	// them the Flight TCP listener serves TLS with that certificate, and
	// the node registers its SHA-256 with the hub, whose workers accept no
	// other certificate there (grpcs:// on the direct data plane). Without
	// them the listener is plaintext. `syndb dev` writes a self-signed one.
	FlightTLSCert string `env:"SYNDB_FLIGHT_TLS_CERT"`
	FlightTLSKey  string `env:"SYNDB_FLIGHT_TLS_KEY"`
	ClickHouse    ClickHouse
	// ClickHousePublicAddr is the native address the hub's ClickHouse uses in
	// remote(); it defaults to ClickHouse.Addr.
	ClickHousePublicAddr string `env:"SYNDB_CLICKHOUSE_PUBLIC_ADDR"`
	// GatewayUser and GatewayPassword are the local ClickHouse user the
	// agent logs the hub's connections in as when they come over libp2p
	// (SQL over libp2p): a read-only user of the warehouse database the lab
	// creates. Without GatewayUser the agent refuses them. GatewayAddr is
	// the native address it connects them to; it defaults to ClickHouse.Addr.
	GatewayUser     string `env:"SYNDB_CLICKHOUSE_GATEWAY_USER"`
	GatewayPassword string `env:"SYNDB_CLICKHOUSE_GATEWAY_PASSWORD"`
	GatewayAddr     string `env:"SYNDB_CLICKHOUSE_GATEWAY_ADDR"`
	// AnswerDelay holds every answer to the hub back this long: a slow or
	// distant node on demand, for failure drills and tests. 0 in production.
	AnswerDelay time.Duration `env:"SYNDB_NODE_ANSWER_DELAY" envDefault:"0s"`
}

// Validate checks the node configuration and fills derived defaults.
func (c *Node) Validate() error {
	var errs []error
	if c.AnswerDelay < 0 || c.AnswerDelay > 5*time.Minute {
		errs = append(errs, fmt.Errorf("SYNDB_NODE_ANSWER_DELAY: %s must be between 0 and 5m", c.AnswerDelay))
	}
	if !validName(c.Name) {
		errs = append(errs, fmt.Errorf("SYNDB_NODE_NAME: %q must be 1-63 characters of a-z, 0-9 and '-'", c.Name))
	}
	if c.Hub != "" {
		errs = append(errs, checkPeerAddr("SYNDB_HUB_ADDR", c.Hub))
	} else if len(c.Bootstrap) == 0 && !c.MDNS {
		errs = append(errs, errors.New("SYNDB_HUB_ADDR: no way to find the hub: give its address, bootstrap peers (SYNDB_P2P_BOOTSTRAP) or enable mDNS"))
	}
	if c.HubID != "" {
		if _, err := peer.Decode(c.HubID); err != nil {
			errs = append(errs, fmt.Errorf("SYNDB_HUB_ID: %q is not a peer ID: %w", c.HubID, err))
		}
	}
	errs = append(errs, c.Discovery.Validate())
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("SYNDB_P2P_LISTEN: at least one listen address is required"))
	}
	if c.ClickHousePublicAddr == "" {
		c.ClickHousePublicAddr = c.ClickHouse.Addr
	}
	if c.GatewayAddr == "" {
		c.GatewayAddr = c.ClickHouse.Addr
	}
	if !domain.ValidClickHouseDatabase(c.ClickHouse.Database) {
		// The node registers it, and the hub accepts only an identifier.
		errs = append(errs, fmt.Errorf("SYNDB_CLICKHOUSE_DATABASE: %.80q must be 1-64 characters of A-Z, a-z, 0-9 and '_', not starting with a digit",
			c.ClickHouse.Database))
	}
	if c.DataPlane == "" {
		c.DataPlane = DataPlaneLibp2p
	}
	if c.DataPlane != DataPlaneLibp2p && c.DataPlane != DataPlaneDirect {
		errs = append(errs, fmt.Errorf("SYNDB_DATA_PLANE: %.40q is neither %q nor %q", c.DataPlane, DataPlaneLibp2p, DataPlaneDirect))
	}
	if (c.FlightTLSCert == "") != (c.FlightTLSKey == "") {
		errs = append(errs, errors.New("SYNDB_FLIGHT_TLS_CERT and SYNDB_FLIGHT_TLS_KEY: give both (TLS on the Flight listener) or neither"))
	}
	errs = append(errs,
		checkHostPort("SYNDB_FLIGHT_ADDR", c.FlightAddr),
		checkHostPort("SYNDB_CLICKHOUSE_ADDR", c.ClickHouse.Addr),
		checkHostPort("SYNDB_CLICKHOUSE_PUBLIC_ADDR", c.ClickHousePublicAddr),
		checkHostPort("SYNDB_CLICKHOUSE_GATEWAY_ADDR", c.GatewayAddr),
		checkNonEmpty("SYNDB_P2P_KEY_FILE", c.KeyFile),
		checkPSK(c.PSK),
		checkPrivateNetwork(c.PSK, c.Discovery, c.Hub),
	)
	return errors.Join(errs...)
}
