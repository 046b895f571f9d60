package devstack

import (
	"context"
	"fmt"
	"net"
	"strconv"
)

// NodePorts are the ports of one node's ClickHouse.
type NodePorts struct {
	Name                          string
	ClickHouseHTTP, ClickHouseTCP int
}

// Ports are the services' ports.
type Ports struct {
	Postgres, Temporal, TemporalUI int
	ClickHouseHTTP, ClickHouseTCP  int
	MinIO, MinIOConsole            int
	Nodes                          []NodePorts
}

// DevPorts returns the ports of the dev federation (README): PostgreSQL on
// 5432, or the first free port from 55432 when 5432 is taken.
func DevPorts() Ports {
	pg := 5432
	if !PortFree(pg) {
		for pg = 55432; pg < 55532 && !PortFree(pg); pg++ {
		}
	}
	return Ports{
		Postgres: pg, Temporal: 7233, TemporalUI: 8233,
		ClickHouseHTTP: 8123, ClickHouseTCP: 9000,
		MinIO: 9100, MinIOConsole: 9101,
		Nodes: []NodePorts{
			{Name: "lab-a", ClickHouseHTTP: 8124, ClickHouseTCP: 9003},
			{Name: "lab-b", ClickHouseHTTP: 8125, ClickHouseTCP: 9004},
		},
	}
}

// FreePorts returns distinct free ports for a stack with the named nodes.
func FreePorts(nodes ...string) (Ports, error) {
	seen := map[int]bool{}
	var err error
	next := func() int {
		for err == nil {
			var p int
			if p, err = FreePort(); err == nil && !seen[p] {
				seen[p] = true
				return p
			}
		}
		return 0
	}
	p := Ports{
		Postgres: next(), Temporal: next(), TemporalUI: next(),
		ClickHouseHTTP: next(), ClickHouseTCP: next(), MinIO: next(), MinIOConsole: next(),
	}
	for _, n := range nodes {
		p.Nodes = append(p.Nodes, NodePorts{Name: n, ClickHouseHTTP: next(), ClickHouseTCP: next()})
	}
	return p, err
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PortFree reports whether nothing listens on 127.0.0.1:port.
func PortFree(port int) bool {
	l, err := new(net.ListenConfig).Listen(context.Background(), "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
