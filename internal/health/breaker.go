package health

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrInvalidConfig is wrapped by the error Config.Validate returns.
var ErrInvalidConfig = errors.New("invalid health config")

// Config holds the circuit breaker's thresholds. Load it once, check it with
// Validate, and pass the same value to every Step.
//
// The defaults (see DefaultConfig) sit between the systems we borrowed from.
// Envoy's outlier detection ejects after 5 consecutive errors, but it counts
// errors on live traffic that arrive many times a second; our only signal is
// one ping per node per sweep, so 5 would leave a dead node routable for
// nearly a minute at a 10 s sweep. Consul marks a check critical on the first
// failure, which flaps on one lost packet, and the Kubernetes node lifecycle
// tolerates a few missed 10 s heartbeats (node-monitor-grace-period 40 s) before
// it marks a node NotReady. So we eject after 3 consecutive failed pings at a
// short sweep interval (about 30 s at 10 s), and keep Envoy's half-open
// schedule: probe again after 30 s × the number of ejections, capped at
// 5 min (Envoy's base_ejection_time and max_ejection_time defaults), and
// restore a node only after 2 answered probes so one lucky ping does not
// route queries to a flapping lab.
type Config struct {
	// SlowLatency is the slowest ping still counted as good; a slower answer
	// makes the node Degraded. Default 1 s.
	SlowLatency time.Duration `json:"slow_latency"`
	// FailuresToEject is the number of consecutive failed pings that make a
	// node Unreachable. Default 3.
	FailuresToEject int `json:"failures_to_eject"`
	// SuccessesToRestore is the number of consecutive answered half-open
	// probes that bring an Unreachable node back. Default 2.
	SuccessesToRestore int `json:"successes_to_restore"`
	// ProbeBackoff is the wait before the first half-open probe of an
	// Unreachable node; the n-th ejection in a row waits n × ProbeBackoff.
	// Default 30 s.
	ProbeBackoff time.Duration `json:"probe_backoff"`
	// MaxProbeBackoff caps the wait between half-open probes. Default 5 min.
	MaxProbeBackoff time.Duration `json:"max_probe_backoff"`
}

// DefaultConfig returns the defaults justified on Config.
func DefaultConfig() Config {
	return Config{
		SlowLatency:        time.Second,
		FailuresToEject:    3,
		SuccessesToRestore: 2,
		ProbeBackoff:       30 * time.Second,
		MaxProbeBackoff:    5 * time.Minute,
	}
}

// Validate reports every field that is out of range: all values must be
// positive and MaxProbeBackoff must be at least ProbeBackoff. The error wraps
// ErrInvalidConfig and names each bad field.
func (c Config) Validate() error {
	var problems []string
	if c.SlowLatency <= 0 {
		problems = append(problems, fmt.Sprintf("SlowLatency must be positive, got %s", c.SlowLatency))
	}
	if c.FailuresToEject <= 0 {
		problems = append(problems, fmt.Sprintf("FailuresToEject must be positive, got %d", c.FailuresToEject))
	}
	if c.SuccessesToRestore <= 0 {
		problems = append(problems, fmt.Sprintf("SuccessesToRestore must be positive, got %d", c.SuccessesToRestore))
	}
	if c.ProbeBackoff <= 0 {
		problems = append(problems, fmt.Sprintf("ProbeBackoff must be positive, got %s", c.ProbeBackoff))
	}
	if c.MaxProbeBackoff < c.ProbeBackoff {
		problems = append(problems, fmt.Sprintf("MaxProbeBackoff (%s) must be at least ProbeBackoff (%s)",
			c.MaxProbeBackoff, c.ProbeBackoff))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(problems, "; "))
	}
	return nil
}

// Observation is the outcome of one ping, as the sweep activity reports it.
type Observation struct {
	// Answered is false when the node did not answer at all.
	Answered bool `json:"answered"`
	// Latency is the ping's round trip.
	Latency time.Duration `json:"latency"`
	// Error says why the node did not answer.
	Error string `json:"error,omitempty"`
	// ClickHouseOK reports whether the node could reach its ClickHouse.
	ClickHouseOK bool `json:"clickhouse_ok"`
	// ClickHouseError says why it could not.
	ClickHouseError string `json:"clickhouse_error,omitempty"`
	// SchemaVersion is the migration the node's warehouse is at.
	SchemaVersion int `json:"schema_version"`
}

// Node is one node's breaker state, carried between sweeps and across
// continue-as-new. Treat it as a value: Step returns a new one.
type Node struct {
	// State is the node's health.
	State State `json:"state"`
	// Since is when the node entered State.
	Since time.Time `json:"since"`
	// Reason says why the node is in State. It is set on every transition and
	// refreshed by observations that confirm Degraded or Unreachable, so it
	// names the current cause.
	Reason string `json:"reason"`
	// Failures counts consecutive failed pings; any answer resets it.
	Failures int `json:"failures"`
	// Successes counts consecutive answered half-open probes while
	// Unreachable; it is zero in every other state.
	Successes int `json:"successes"`
	// Ejections counts failed pings since the node was last routable, starting
	// at the ejection itself; it multiplies ProbeBackoff and is reset when the
	// node is restored.
	Ejections int `json:"ejections"`
	// NextProbe is, while Unreachable, the earliest time to probe again.
	NextProbe time.Time `json:"next_probe"`
	// LastLatency is the latency of the last answered ping.
	LastLatency time.Duration `json:"last_latency"`
}

// Transition is a change of State, recorded for the audit.
type Transition struct {
	// From is the state before the observation.
	From State `json:"from"`
	// To is the state after it.
	To State `json:"to"`
	// Reason says why, as Node.Reason.
	Reason string `json:"reason"`
	// Latency is the observation's latency as the sweep reported it.
	Latency time.Duration `json:"latency"`
	// At is the time of the sweep that observed it.
	At time.Time `json:"at"`
}

// Reasons not derived from an observation.
const (
	reasonRegistered = "registered, not yet checked"
	reasonOK         = "ok"
)

// NewNode returns the state of a node registered at now: Unknown.
func NewNode(now time.Time) Node {
	return Node{State: Unknown, Since: now, Reason: reasonRegistered}
}

// Due reports whether the sweep at now should ping the node. Every node is
// due except an Unreachable one whose NextProbe has not come yet: half-open
// probing.
func (n Node) Due(now time.Time) bool {
	if n.State == Unreachable {
		return !now.Before(n.NextProbe)
	}
	return true
}

// Step feeds one observation, made by the sweep at now, to the breaker and
// returns the node's new state and the transition, or nil if State did not
// change. target is the schema version the fleet is at; 0 means schema
// versions are not judged. c must be valid (see Config.Validate); the caller
// calls Step for an Unreachable node only when it is Due. A Node whose State
// is not valid (the zero Node) is treated as Unknown.
//
// Step is pure: it reads no clock, does no I/O and returns a new Node, so it
// is safe to call from workflow code.
func Step(c Config, n Node, o Observation, target int, now time.Time) (Node, *Transition) {
	next := n
	if o.Answered {
		next.LastLatency = o.Latency
	}
	switch n.State {
	case Healthy, Degraded:
		next = stepRoutable(c, next, o, target, now)
	case Unreachable:
		next = stepUnreachable(c, next, o, target, now)
	case Unknown:
		next = stepUnknown(c, next, o, target, now)
	default: // not a valid State, such as the zero Node's: as Unknown
		next = stepUnknown(c, next, o, target, now)
	}
	if next.State == n.State {
		return next, nil
	}
	next.Since = now
	return next, &Transition{From: n.State, To: next.State, Reason: next.Reason, Latency: o.Latency, At: now}
}

// stepUnknown: the first answer decides Healthy or Degraded; failures eject
// as for a routable node.
func stepUnknown(c Config, n Node, o Observation, target int, now time.Time) Node {
	if !o.Answered {
		return fail(c, n, o, now)
	}
	n.Failures = 0
	n.State, n.Reason = judge(c, o, target)
	return n
}

// stepRoutable: each answer sets Healthy or Degraded at once; failures keep
// the state until FailuresToEject of them in a row eject the node.
func stepRoutable(c Config, n Node, o Observation, target int, now time.Time) Node {
	if !o.Answered {
		return fail(c, n, o, now)
	}
	n.Failures = 0
	state, reason := judge(c, o, target)
	if state == Degraded || state != n.State {
		n.Reason = reason
	}
	n.State = state
	return n
}

// stepUnreachable: a half-open probe. A failure pushes the next probe back;
// SuccessesToRestore answers in a row restore the node to what the last
// answer shows.
func stepUnreachable(c Config, n Node, o Observation, target int, now time.Time) Node {
	if !o.Answered {
		n.Failures++
		n.Successes = 0
		n.Reason = noAnswer(n.Failures, o)
		return eject(c, n, now)
	}
	n.Failures = 0
	n.Successes++
	n.NextProbe = now
	if n.Successes < c.SuccessesToRestore {
		return n
	}
	state, reason := judge(c, o, target)
	restored := "restored after " + count(n.Successes, "answered probe")
	if state == Degraded {
		restored += "; " + reason
	}
	n.State, n.Reason = state, restored
	n.Successes, n.Ejections, n.NextProbe = 0, 0, time.Time{}
	return n
}

// fail counts a failed ping of a node that is not Unreachable and ejects it
// when the count reaches FailuresToEject.
func fail(c Config, n Node, o Observation, now time.Time) Node {
	n.Failures++
	if n.Failures < c.FailuresToEject {
		return n
	}
	n.State = Unreachable
	n.Reason = noAnswer(n.Failures, o)
	n.Successes = 0
	return eject(c, n, now)
}

// eject counts one more ejection and schedules the next half-open probe at
// now + min(ProbeBackoff × Ejections, MaxProbeBackoff), as Envoy does.
func eject(c Config, n Node, now time.Time) Node {
	n.Ejections++
	n.NextProbe = now.Add(backoff(c, n.Ejections))
	return n
}

// backoff is min(ProbeBackoff × ejections, MaxProbeBackoff) without overflow.
func backoff(c Config, ejections int) time.Duration {
	if c.ProbeBackoff <= 0 {
		return c.MaxProbeBackoff
	}
	if int64(ejections) > int64(c.MaxProbeBackoff/c.ProbeBackoff) {
		return c.MaxProbeBackoff
	}
	return min(c.ProbeBackoff*time.Duration(ejections), c.MaxProbeBackoff)
}

// judge classifies an answered observation as Healthy or Degraded, with the
// reason. Degraded causes are listed in a fixed order, joined by "; ".
func judge(c Config, o Observation, target int) (State, string) {
	var causes []string
	if o.Latency > c.SlowLatency {
		causes = append(causes, fmt.Sprintf("slow: %s > %s", o.Latency, c.SlowLatency))
	}
	if !o.ClickHouseOK {
		if o.ClickHouseError != "" {
			causes = append(causes, "clickhouse down: "+o.ClickHouseError)
		} else {
			causes = append(causes, "clickhouse down")
		}
	}
	if target > 0 && o.SchemaVersion < target {
		causes = append(causes, fmt.Sprintf("schema %d behind target %d", o.SchemaVersion, target))
	}
	if len(causes) == 0 {
		return Healthy, reasonOK
	}
	return Degraded, strings.Join(causes, "; ")
}

// noAnswer is the reason for a node that stopped answering.
func noAnswer(failures int, o Observation) string {
	reason := count(failures, "consecutive failed ping")
	if o.Error != "" {
		reason += ": " + o.Error
	}
	return reason
}

// count returns "1 thing" or "n things".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
