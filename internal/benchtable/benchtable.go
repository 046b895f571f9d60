// Package benchtable turns the output of the project's benchmarks (`go test
// -bench`, in the Go benchmark format) into one table: each figure beside
// its baseline from the same run, the ratio and the goal, under a header
// that says when, at which commit and on how many cores the run was made.
// It also rewrites the benchmark section of a Markdown file (the README)
// from that table, so the two cannot drift apart.
package benchtable

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// Figure names one metric of one benchmark: Bench is the benchmark's name
// without "Benchmark" and without the GOMAXPROCS suffix
// ("SchemaSyncFanout/nodes=100"), Unit the metric's unit ("sync-s").
type Figure struct {
	Bench string
	Unit  string
}

// Goal is what a row's figure must meet; the zero Goal asks nothing.
type Goal struct {
	// MaxRatio: the figure is at most MaxRatio times its baseline.
	MaxRatio float64
	// MinRatio: the figure is at least MinRatio times its baseline.
	MinRatio float64
	// MaxValue: the figure itself is at most MaxValue.
	MaxValue float64
}

// String says the goal as the table prints it.
func (g Goal) String() string {
	var parts []string
	if g.MaxRatio > 0 {
		parts = append(parts, fmt.Sprintf("≤ %s×", trim(g.MaxRatio)))
	}
	if g.MinRatio > 0 {
		parts = append(parts, fmt.Sprintf("≥ %s %%", trim(100*g.MinRatio)))
	}
	if g.MaxValue > 0 {
		parts = append(parts, fmt.Sprintf("≤ %s", trim(g.MaxValue)))
	}
	return strings.Join(parts, ", ")
}

// Row is one line of the table.
type Row struct {
	// Label says what was measured.
	Label string
	Value Figure
	// Base is the baseline measured in the same run; nil when the row has
	// none.
	Base *Figure
	// BaseLabel says what the baseline is.
	BaseLabel string
	Goal      Goal
}

// Run is the parsed output of one benchmark run.
type Run struct {
	// Config holds the run's file configuration lines ("commit: …").
	Config map[string]string
	// values are every result's values by figure, in the order read.
	values map[Figure][]float64
}

// Parse reads benchmark output.
func Parse(r io.Reader, name string) (*Run, error) {
	run := &Run{Config: map[string]string{}, values: map[Figure][]float64{}}
	rd := benchfmt.NewReader(r, name)
	for rd.Scan() {
		switch rec := rd.Result().(type) {
		case *benchfmt.Result:
			for _, c := range rec.Config {
				if c.File {
					run.Config[c.Key] = string(c.Value)
				}
			}
			bench := benchName(rec.Name)
			for _, v := range rec.Values {
				// The unit as the benchmark wrote it, before benchfmt tidied it.
				value, unit := v.Value, v.Unit
				if v.OrigUnit != "" {
					value, unit = v.OrigValue, v.OrigUnit
				}
				f := Figure{Bench: bench, Unit: unit}
				run.values[f] = append(run.values[f], value)
			}
		case *benchfmt.SyntaxError:
			// Test logs sit between benchmark lines, and a log line may
			// begin with a benchmark's name: such lines are not results.
		}
	}
	if err := rd.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return run, nil
}

// benchName is n without its "Benchmark" prefix and GOMAXPROCS suffix.
func benchName(n benchfmt.Name) string {
	base, parts := n.Parts()
	var b strings.Builder
	b.Write(bytes.TrimPrefix(base, []byte("Benchmark")))
	for _, p := range parts {
		if len(p) > 0 && p[0] == '-' {
			continue // GOMAXPROCS
		}
		b.Write(p)
	}
	return b.String()
}

// Value is the median of f's values in the run; false when it has none.
func (r *Run) Value(f Figure) (float64, bool) {
	vs := slices.Clone(r.values[f])
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2], true
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, true
}

// Table writes rows as a Markdown table of run, under a line that gives
// the run's date, commit and cores. A row whose figure the run lacks says
// "not run".
func Table(w io.Writer, run *Run, rows []Row) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s at commit %s on %s cores (%s).\n\n",
		orDash(run.Config["date"]), orDash(run.Config["commit"]), orDash(run.Config["cores"]), orDash(run.Config["cpu"]))
	b.WriteString("| benchmark | figure | baseline (same run) | baseline figure | ratio | goal | met |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, row := range rows {
		v, ok := run.Value(row.Value)
		if !ok {
			fmt.Fprintf(&b, "| %s | not run | %s | | | %s | |\n", row.Label, row.BaseLabel, row.Goal)
			continue
		}
		base, ratio, hasBase := "", math.NaN(), false
		if row.Base != nil {
			if bv, ok := run.Value(*row.Base); ok {
				base, hasBase = Format(bv, row.Base.Unit), true
				ratio = v / bv
			} else {
				base = "not run"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", row.Label, Format(v, row.Value.Unit),
			row.BaseLabel, base, ratioText(ratio, hasBase), row.Goal, met(row.Goal, v, ratio))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func ratioText(r float64, ok bool) string {
	if !ok || math.IsNaN(r) || math.IsInf(r, 0) {
		return ""
	}
	if r < 0.01 {
		return fmt.Sprintf("1/%.0f", 1/r)
	}
	if r < 1 {
		return fmt.Sprintf("%.0f %%", 100*r)
	}
	return fmt.Sprintf("%.2f×", r)
}

// met says whether v (and its ratio to the baseline) meets g: "yes", "no",
// or "" when g asks nothing.
func met(g Goal, v, ratio float64) string {
	if g == (Goal{}) {
		return ""
	}
	ok := true
	if g.MaxRatio > 0 {
		ok = ok && !math.IsNaN(ratio) && ratio <= g.MaxRatio
	}
	if g.MinRatio > 0 {
		ok = ok && !math.IsNaN(ratio) && ratio >= g.MinRatio
	}
	if g.MaxValue > 0 {
		ok = ok && v <= g.MaxValue
	}
	if ok {
		return "yes"
	}
	return "no"
}

// Format prints v in its unit, rounded for reading: "1.42 s", "7.0 M
// rows/s", "535 µs".
func Format(v float64, unit string) string {
	switch {
	case strings.HasSuffix(unit, "/s") && math.Abs(v) >= 1e6:
		return fmt.Sprintf("%.1f M %s", v/1e6, unit)
	case strings.HasSuffix(unit, "/s") && math.Abs(v) >= 1e4:
		return fmt.Sprintf("%s k %s", trim(math.Round(v/100)/10), unit)
	}
	return trim(round3(v)) + " " + unit
}

// round3 rounds v to three significant digits (integers stay whole).
func round3(v float64) float64 {
	if v == 0 || math.Abs(v) >= 100 {
		return math.Round(v)
	}
	p := math.Pow(10, 2-math.Floor(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}

// trim prints v with no trailing zeros.
func trim(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// Markers delimit the section of a Markdown file that Rewrite replaces.
const (
	BeginMarker = "<!-- bench:begin -->"
	EndMarker   = "<!-- bench:end -->"
)

// ErrNoSection is returned by Rewrite for a document without both markers.
var ErrNoSection = errors.New("no " + BeginMarker + " … " + EndMarker + " section")

// Rewrite returns doc with the text between its markers replaced by table.
func Rewrite(doc []byte, table string) ([]byte, error) {
	i := bytes.Index(doc, []byte(BeginMarker))
	j := bytes.Index(doc, []byte(EndMarker))
	if i < 0 || j < i {
		return nil, ErrNoSection
	}
	var out bytes.Buffer
	out.Write(doc[:i+len(BeginMarker)])
	out.WriteString("\n")
	out.WriteString(strings.TrimSpace(table))
	out.WriteString("\n")
	out.Write(doc[j:])
	return out.Bytes(), nil
}
