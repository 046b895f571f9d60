package health

import "time"

// The health monitor's defaults, the one place they are set: the
// configuration (internal/config) starts from them before reading
// SYNDB_HEALTH_*, and the monitor workflow falls back to them for a zero
// setting. The README explains each.
const (
	// DefaultInterval is the time between sweeps: Envoy's outlier detection
	// interval.
	DefaultInterval = 10 * time.Second
	// DefaultConcurrency bounds the pings of a sweep in flight at once.
	DefaultConcurrency = 64
	// DefaultPingTimeout bounds one ping.
	DefaultPingTimeout = 5 * time.Second
)
