package api

import (
	"fmt"
	"io"
	"net/http"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/syndb/federation/internal/arrowconv"
)

// writeArrow streams rows as an Arrow IPC stream, one record batch at a
// time (arrowconv bounds a batch by rows and bytes), flushing after each.
func writeArrow(w io.Writer, rows driver.Rows) (int64, error) {
	r, err := arrowReader(rows)
	if err != nil {
		return 0, err
	}
	defer r.Release()
	iw := ipc.NewWriter(w, ipc.WithSchema(r.Schema()), ipc.WithAllocator(memory.DefaultAllocator))
	for r.Next() {
		if err := iw.Write(r.RecordBatch()); err != nil {
			return r.Rows(), fmt.Errorf("write arrow batch: %w", err)
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	if err := r.Err(); err != nil {
		// No end-of-stream marker: the client sees a truncated stream,
		// not a complete one.
		return r.Rows(), err
	}
	if err := iw.Close(); err != nil {
		return r.Rows(), fmt.Errorf("close arrow stream: %w", err)
	}
	return r.Rows(), nil
}

// arrowReader reads rows as Arrow record batches, typed by the ClickHouse
// types of the query's columns.
func arrowReader(rows driver.Rows) (*arrowconv.Reader, error) {
	cts := rows.ColumnTypes()
	types := make([]string, len(cts))
	for i, ct := range cts {
		types[i] = ct.DatabaseTypeName()
	}
	r, err := arrowconv.NewReader(rows, rows.Columns(), types, 0, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("arrow schema of the result: %w", err)
	}
	return r, nil
}
