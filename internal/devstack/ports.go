package devstack

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
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

// Ports handed out by FreePort come from below the kernel's ephemeral
// range (32768 and up on Linux), where outgoing connections take their
// source ports: a port the kernel picked could be taken by any client
// between the pick and the server's bind.
const (
	freePortLow  = 20000
	freePortHigh = 32767
)

var (
	freePortMu sync.Mutex
	handedOut  = map[int]bool{}
)

// FreePort returns a port on 127.0.0.1 free for both TCP and UDP (libp2p
// listens on both), not handed out before by this process nor claimed by
// another live one (claimPort): test packages run as parallel processes,
// and a port is handed out seconds before its server binds it.
func FreePort() (int, error) {
	freePortMu.Lock()
	defer freePortMu.Unlock()
	for range 2000 {
		p := freePortLow + rand.IntN(freePortHigh-freePortLow+1)
		if handedOut[p] || !PortFree(p) || !udpFree(p) || !claimPort(p) {
			continue
		}
		handedOut[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("find a free port: none free in %d-%d", freePortLow, freePortHigh)
}

// portClaims is where processes claim the ports they hand out: a file per
// port, holding the claimer's process ID.
var portClaims = filepath.Join(os.TempDir(), "syndb-ports")

// claimPort claims port for this process, unless a live process other than
// this one holds it; the claim of a process that has exited is taken over.
func claimPort(port int) bool {
	if err := os.MkdirAll(portClaims, 0o777); err != nil {
		return true // no claims to be had: the bind checks alone
	}
	path := filepath.Join(portClaims, strconv.Itoa(port))
	for range 2 {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			_, _ = f.WriteString(strconv.Itoa(os.Getpid()))
			_ = f.Close()
			return true
		}
		if !errors.Is(err, fs.ErrExist) {
			return true
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return false // being written: another process's, just now
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil {
			return false
		}
		if alive := syscall.Kill(pid, 0); pid != os.Getpid() && (alive == nil || errors.Is(alive, syscall.EPERM)) {
			return false
		}
		_ = os.Remove(path) // a claim of an exited process, or of this one's earlier run
	}
	return false
}

func udpFree(port int) bool {
	c, err := new(net.ListenConfig).ListenPacket(context.Background(), "udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
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
