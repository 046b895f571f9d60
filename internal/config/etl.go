package config

import (
	"errors"
	"fmt"
)

// ETL bounds what an upload may be and what reading it may cost: the API
// signs uploads with MaxUploadBytes, and the worker's validation refuses a
// staged file over any cap (with the cap it broke) before it allocates for it.
type ETL struct {
	// MaxUploadBytes caps a staged file: the pre-signed POST policy's
	// content-length range, checked again on the staged object.
	MaxUploadBytes int64 `env:"SYNDB_ETL_MAX_UPLOAD_BYTES" envDefault:"268435456"`
	// MaxCellBytes caps one CSV cell or one Parquet string/binary value.
	MaxCellBytes int64 `env:"SYNDB_ETL_MAX_CELL_BYTES" envDefault:"1048576"`
	// MaxRowBytes caps one CSV record (a line, or several when a quoted cell
	// holds line breaks).
	MaxRowBytes int64 `env:"SYNDB_ETL_MAX_ROW_BYTES" envDefault:"8388608"`
	// MaxPageBytes caps a Parquet page, compressed or not (writers use 1 MiB).
	MaxPageBytes int64 `env:"SYNDB_ETL_MAX_PAGE_BYTES" envDefault:"16777216"`
	// MaxColumnChunkBytes caps a Parquet column chunk's uncompressed size.
	MaxColumnChunkBytes int64 `env:"SYNDB_ETL_MAX_COLUMN_CHUNK_BYTES" envDefault:"536870912"`
	// MinRowBytes is the fewest file bytes a Parquet row may take: a file
	// declaring more rows than its size over MinRowBytes is refused before
	// it is read (every row carries a 16-byte cid, which does not compress).
	MinRowBytes int64 `env:"SYNDB_ETL_MIN_ROW_BYTES" envDefault:"8"`
	// MaxBatchBytes bounds the decoded bytes of one batch of rows in memory.
	MaxBatchBytes int64 `env:"SYNDB_ETL_MAX_BATCH_BYTES" envDefault:"33554432"`
}

// Validate checks the ETL caps.
func (e *ETL) Validate() error {
	var errs []error
	for _, c := range []struct {
		name string
		v    int64
		min  int64
	}{
		{"SYNDB_ETL_MAX_UPLOAD_BYTES", e.MaxUploadBytes, 1 << 10},
		{"SYNDB_ETL_MAX_CELL_BYTES", e.MaxCellBytes, 64},
		{"SYNDB_ETL_MAX_ROW_BYTES", e.MaxRowBytes, 64},
		{"SYNDB_ETL_MAX_PAGE_BYTES", e.MaxPageBytes, 64 << 10},
		{"SYNDB_ETL_MAX_COLUMN_CHUNK_BYTES", e.MaxColumnChunkBytes, 64 << 10},
		{"SYNDB_ETL_MIN_ROW_BYTES", e.MinRowBytes, 1},
		{"SYNDB_ETL_MAX_BATCH_BYTES", e.MaxBatchBytes, 1 << 20},
	} {
		if c.v < c.min {
			errs = append(errs, fmt.Errorf("%s: %d is below %d", c.name, c.v, c.min))
		}
	}
	if e.MaxRowBytes < e.MaxCellBytes {
		errs = append(errs, errors.New("SYNDB_ETL_MAX_ROW_BYTES must be at least SYNDB_ETL_MAX_CELL_BYTES"))
	}
	if e.MaxPageBytes > 1<<31-1 {
		errs = append(errs, errors.New("SYNDB_ETL_MAX_PAGE_BYTES: a Parquet page is at most 2 GiB"))
	}
	return errors.Join(errs...)
}
