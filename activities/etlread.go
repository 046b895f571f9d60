package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/domain"
)

// UploadLimits bounds what reading a staged file may cost. A file over a
// cap fails validation with a problem that names the cap (and the column);
// nothing is allocated for the part over it.
type UploadLimits struct {
	// MaxUploadBytes caps the staged object.
	MaxUploadBytes int64
	// MaxCellBytes caps a CSV cell and a Parquet string or binary value.
	MaxCellBytes int64
	// MaxRowBytes caps a CSV record.
	MaxRowBytes int64
	// MaxPageBytes caps a Parquet page, compressed and uncompressed.
	MaxPageBytes int64
	// MaxColumnChunkBytes caps a Parquet column chunk, uncompressed.
	MaxColumnChunkBytes int64
	// MinRowBytes is the fewest file bytes a Parquet row may take.
	MinRowBytes int64
	// MaxBatchBytes bounds the decoded bytes of one batch of rows.
	MaxBatchBytes int64
}

// DefaultUploadLimits are the caps of config.ETL's defaults.
var DefaultUploadLimits = UploadLimits{
	MaxUploadBytes:      256 << 20,
	MaxCellBytes:        1 << 20,
	MaxRowBytes:         8 << 20,
	MaxPageBytes:        16 << 20,
	MaxColumnChunkBytes: 512 << 20,
	MinRowBytes:         8,
	MaxBatchBytes:       32 << 20,
}

// maxBatchRows is the most rows a batch of a staged file holds.
const maxBatchRows = 64 << 10

// openStaged opens the staged object after checking its size against the
// upload cap (the POST policy caps uploads, but an object can arrive other
// ways): a CSV stream straight from S3, or a Parquet file downloaded to a
// temporary file (Parquet needs random access), so memory never holds the
// file. A file over the cap is a problem in rep, and nothing is opened.
func (a *Etl) openStaged(ctx context.Context, spec domain.EtlSpec, rep *domain.EtlReport) (io.ReadCloser, string, error) {
	info, err := a.staging.StatObject(ctx, a.bucket, spec.Object, minio.StatObjectOptions{})
	if err != nil {
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			return nil, "", temporal.NewNonRetryableApplicationError(fmt.Sprintf("staged object %s: %v", spec.Object, err), domain.ErrTypeInvalid, err)
		}
		return nil, "", fmt.Errorf("stat %s: %w", spec.Object, err)
	}
	limit := a.limits.MaxUploadBytes
	if info.Size > limit {
		rep.Add(domain.Problem{Problem: fmt.Sprintf("the staged file is %d bytes, over the %d-byte upload cap (SYNDB_ETL_MAX_UPLOAD_BYTES)", info.Size, limit)})
		return nil, "", nil
	}
	obj, err := a.staging.GetObject(ctx, a.bucket, spec.Object, minio.GetObjectOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("open %s: %w", spec.Object, err)
	}
	// An object replaced since the stat is still read only up to the cap.
	body := &cappedBody{r: io.LimitReader(obj, limit+1), c: obj, limit: limit}
	if spec.Format() == "csv" {
		return body, "", nil
	}
	defer func() { _ = body.Close() }()
	f, err := os.CreateTemp("", "syndb-etl-*.parquet")
	if err != nil {
		return nil, "", fmt.Errorf("temp file: %w", err)
	}
	_, err = io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		if errors.Is(err, errUploadTooBig) {
			rep.Add(domain.Problem{Problem: fmt.Sprintf("the staged file is over the %d-byte upload cap (SYNDB_ETL_MAX_UPLOAD_BYTES)", limit)})
			return nil, "", nil
		}
		return nil, "", fmt.Errorf("download %s: %w", spec.Object, err)
	}
	return nil, f.Name(), nil
}

// errUploadTooBig ends the read of an object that grew past the upload cap.
var errUploadTooBig = errors.New("staged file over the upload cap")

// cappedBody reads an object, failing with errUploadTooBig past limit bytes.
type cappedBody struct {
	r     io.Reader
	c     io.Closer
	n     int64
	limit int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > b.limit {
		return n, errUploadTooBig
	}
	return n, err
}

func (b *cappedBody) Close() error { return b.c.Close() }

// rows calls fn with the staged file's rows as Arrow records of at most
// maxBatchRows rows and about MaxBatchBytes decoded bytes (CSV: parsed
// cell by cell; Parquet: as stored), reporting faults to rep; once the
// file has a fault, fn is no longer called.
func (a *Etl) rows(ctx context.Context, spec domain.EtlSpec, rep *domain.EtlReport, fn func(arrow.RecordBatch) error) error {
	rc, file, err := a.openStaged(ctx, spec, rep)
	if err != nil || (rc == nil && file == "") {
		return err
	}
	c := fileCheck{table: spec.Table, types: a.types[spec.Table], dataset: uuid.MustParse(spec.Dataset.DatasetID),
		limits: a.limits, batch: maxBatchRows}
	if rc != nil {
		defer func() { _ = rc.Close() }()
		return c.readCSV(ctx, rc, rep, fn)
	}
	defer func() { _ = os.Remove(file) }()
	return c.readParquet(ctx, file, rep, fn)
}
