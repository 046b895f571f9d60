package nodeagent

import (
	"context"
	"errors"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow/array"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/syndb/federation/internal/arrowconv"
	"github.com/syndb/federation/internal/chnative"
)

// rowReader is the record reader DoGet streams: an arrowconv.BlockReader
// or an arrowconv.Reader.
type rowReader interface {
	array.RecordReader
	// Rows is the number of rows read so far.
	Rows() int64
}

// read runs sql, which selects columns names of types from table, and
// returns a reader of its record batches. It reads ClickHouse's native
// blocks column by column when the service has a native address and
// arrowconv converts every type columnar; otherwise it scans rows through
// conn. Errors are gRPC statuses.
func (s *flightService) read(ctx context.Context, conn driver.Conn, table, sql string, names, types []string) (rowReader, error) {
	if s.native != nil && arrowconv.Columnar(types) {
		blocks, err := chnative.Query(ctx, *s.native, sql)
		if err != nil {
			return nil, chStatus(err, "query %s", table)
		}
		rdr, err := arrowconv.NewBlockReader(blocks, names, types, s.batchRows, s.mem)
		if err != nil {
			_ = blocks.Close()
			return nil, readerStatus(table, err)
		}
		return rdr, nil
	}
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, chStatus(err, "query %s", table)
	}
	rdr, err := arrowconv.NewReader(rows, names, types, s.batchRows, s.mem)
	if err != nil {
		_ = rows.Close()
		return nil, readerStatus(table, err)
	}
	return rdr, nil
}

// readerStatus is the status of a reader that could not be made.
func readerStatus(table string, err error) error {
	if errors.Is(err, arrowconv.ErrUnsupportedType) {
		return status.Errorf(codes.Unimplemented, "table %s: %v", table, err)
	}
	return status.Errorf(codes.Internal, "table %s: %v", table, err)
}
