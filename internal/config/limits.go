package config

import (
	"errors"
	"fmt"
	"net"
)

// Limits bounds what one API key may ask of one `syndb api` process: its
// requests a second (a token bucket) and its federated queries at once.
// Each API replica keeps its own buckets and counts, so a key behind a
// load balancer over N replicas may reach N times these.
type Limits struct {
	// KeyRate is the requests a second a key's bucket refills with, and
	// KeyBurst how many it holds: a key may make KeyBurst requests at once,
	// then KeyRate a second.
	KeyRate  float64 `env:"SYNDB_KEY_RATE" envDefault:"50"`
	KeyBurst int     `env:"SYNDB_KEY_BURST" envDefault:"100"`
	// KeyMaxQueries is how many federated queries (POST /v1/query, Flight
	// DoGet) a key may run at once, each counted until its answer ends.
	KeyMaxQueries int `env:"SYNDB_KEY_MAX_QUERIES" envDefault:"16"`
}

// Validate checks the limits.
func (l *Limits) Validate() error {
	var errs []error
	if !(l.KeyRate > 0 && l.KeyRate <= 1e6) {
		errs = append(errs, fmt.Errorf("SYNDB_KEY_RATE: %g is outside (0, 1000000] requests a second", l.KeyRate))
	}
	if l.KeyBurst < 1 || l.KeyBurst > 1e6 {
		errs = append(errs, fmt.Errorf("SYNDB_KEY_BURST: %d is outside 1..1000000", l.KeyBurst))
	}
	if l.KeyMaxQueries < 1 || l.KeyMaxQueries > 10000 {
		errs = append(errs, fmt.Errorf("SYNDB_KEY_MAX_QUERIES: %d is outside 1..10000", l.KeyMaxQueries))
	}
	return errors.Join(errs...)
}

// Audit configures the API's audit log (PostgreSQL table audit_log).
type Audit struct {
	// Buffer is how many audit entries wait for the background writer; an
	// entry that finds it full is dropped, counted and logged, so a slow
	// PostgreSQL never holds up a request.
	Buffer int `env:"SYNDB_AUDIT_BUFFER" envDefault:"10000"`
}

// Validate checks the audit settings.
func (a *Audit) Validate() error {
	if a.Buffer < 16 || a.Buffer > 1_000_000 {
		return fmt.Errorf("SYNDB_AUDIT_BUFFER: %d is outside 16..1000000", a.Buffer)
	}
	return nil
}

// ParseProxies parses SYNDB_API_TRUSTED_PROXIES: the address ranges (CIDR,
// or single addresses) of the proxies whose X-Forwarded-For the API
// believes.
func ParseProxies(list []string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	var errs []error
	for _, s := range nonBlank(list) {
		if ip := net.ParseIP(s); ip != nil {
			bits := 8 * len(ip.To16())
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("SYNDB_API_TRUSTED_PROXIES: %q is neither an address nor a CIDR range", s))
			continue
		}
		out = append(out, n)
	}
	return out, errors.Join(errs...)
}
