package activities

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/google/uuid"

	"github.com/syndb/federation/internal/domain"
)

func clipValue(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// fileCheck is what a staged file is read and checked against: the table
// it loads into, that table's column types, the job's dataset, and the
// caps. Its readers (readCSV, readParquet) do no I/O but reading the file,
// and report every fault to a domain.EtlReport.
type fileCheck struct {
	table   string
	types   map[string]string
	dataset uuid.UUID
	limits  UploadLimits
	// batch is the most rows a CSV batch holds.
	batch int
}

// parentCheck checks the parent relation of a file's rows: parent_id must
// be a neuron of the dataset on the target (neurons), and a neuron has no
// parent.
type parentCheck struct {
	table, dataset, node string
	neurons              map[uuid.UUID]bool
}

// check reports the parent faults of rec, whose first row is the file's
// row base+1.
func (c parentCheck) check(rec arrow.RecordBatch, base int64, rep *domain.EtlReport) error {
	idx := rec.Schema().FieldIndices("parent_id")
	if len(idx) == 0 {
		return nil
	}
	parents, err := uuidColumn(rec.Column(idx[0]))
	if err != nil {
		return err
	}
	for i := range parents.Len() {
		if !parents.IsValid(i) {
			continue
		}
		id := uuid.UUID(parents.Value(i))
		switch {
		case c.table == "neuron":
			rep.Add(domain.Problem{Row: base + int64(i) + 1, Column: "parent_id", Value: id.String(), Problem: "a neuron has no parent"})
		case !c.neurons[id]:
			rep.Add(domain.Problem{Row: base + int64(i) + 1, Column: "parent_id", Value: id.String(),
				Problem: "no neuron with this cid in dataset " + c.dataset + " on " + c.node})
		}
	}
	return nil
}
