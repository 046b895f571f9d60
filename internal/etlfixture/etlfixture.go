// Package etlfixture writes hostile staged files for the ETL tests: small
// Parquet files that expand to gigabytes when read naively. Each is a
// neuron file (dataset_id, cid, and a string or number column) written
// with the low-level Parquet writer, so building it costs little memory.
package etlfixture

import (
	"bytes"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"
	"github.com/google/uuid"
)

// neuronSchema is dataset_id and cid (UUIDs), s3_mesh_location (string)
// and voxel_volume (double), as the neuron table has them.
func neuronSchema() (*schema.GroupNode, error) {
	var fields schema.FieldList
	for _, name := range []string{"dataset_id", "cid"} {
		n, err := schema.NewPrimitiveNodeLogical(name, parquet.Repetitions.Required, schema.UUIDLogicalType{}, parquet.Types.FixedLenByteArray, 16, -1)
		if err != nil {
			return nil, err
		}
		fields = append(fields, n)
	}
	s, err := schema.NewPrimitiveNodeLogical("s3_mesh_location", parquet.Repetitions.Optional, schema.StringLogicalType{}, parquet.Types.ByteArray, -1, -1)
	if err != nil {
		return nil, err
	}
	v, err := schema.NewPrimitiveNode("voxel_volume", parquet.Repetitions.Optional, parquet.Types.Double, -1, -1)
	if err != nil {
		return nil, err
	}
	return schema.NewGroupNode("schema", parquet.Repetitions.Required, append(fields, s, v), -1)
}

// columns are the values of one row group, produced in chunks of at most
// chunk rows: dataset_id, cid, the string (nil: null) and the double
// (nil: null) of rows [from, to).
type columns struct {
	rows    int64
	dataset func(from, to int64) []parquet.FixedLenByteArray
	cid     func(from, to int64) []parquet.FixedLenByteArray
	str     func(from, to int64) ([]parquet.ByteArray, []int16)
	num     func(from, to int64) ([]float64, []int16)
}

const chunk = 64 << 10

func write(w io.Writer, props *parquet.WriterProperties, c columns) error {
	sc, err := neuronSchema()
	if err != nil {
		return err
	}
	pw := file.NewParquetWriter(w, sc, file.WithWriterProps(props))
	rg, err := pw.AppendRowGroupChecked()
	if err != nil {
		return err
	}
	for col := range 4 {
		cw, err := rg.NextColumn()
		if err != nil {
			return err
		}
		for from := int64(0); from < c.rows; from += chunk {
			to := min(c.rows, from+chunk)
			switch col {
			case 0:
				_, err = cw.(*file.FixedLenByteArrayColumnChunkWriter).WriteBatch(c.dataset(from, to), nil, nil)
			case 1:
				_, err = cw.(*file.FixedLenByteArrayColumnChunkWriter).WriteBatch(c.cid(from, to), nil, nil)
			case 2:
				v, def := c.str(from, to)
				_, err = cw.(*file.ByteArrayColumnChunkWriter).WriteBatch(v, def, nil)
			case 3:
				v, def := c.num(from, to)
				_, err = cw.(*file.Float64ColumnChunkWriter).WriteBatch(v, def, nil)
			}
			if err != nil {
				return fmt.Errorf("column %d: %w", col, err)
			}
		}
		if err := cw.Close(); err != nil {
			return err
		}
	}
	if err := rg.Close(); err != nil {
		return err
	}
	return pw.FlushWithFooter()
}

func same(v []byte) func(from, to int64) []parquet.FixedLenByteArray {
	return func(from, to int64) []parquet.FixedLenByteArray {
		out := make([]parquet.FixedLenByteArray, to-from)
		for i := range out {
			out[i] = v
		}
		return out
	}
}

func random(from, to int64) []parquet.FixedLenByteArray {
	out := make([]parquet.FixedLenByteArray, to-from)
	for i := range out {
		id := uuid.New()
		out[i] = id[:]
	}
	return out
}

func nulls(from, to int64) ([]float64, []int16) { return nil, make([]int16, to-from) }

func nullStrings(from, to int64) ([]parquet.ByteArray, []int16) { return nil, make([]int16, to-from) }

// BigStrings writes n neurons of dataset whose s3_mesh_location is size
// bytes of one repeated letter, ZSTD-compressed without a dictionary: each
// value is one page that size uncompressed, and the file is a few KB per
// 100 MB of value. (The file: n=3, size=200 MB, about 65 KB.)
func BigStrings(w io.Writer, dataset uuid.UUID, n int, size int) error {
	big := bytes.Repeat([]byte{'x'}, size)
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithDictionaryDefault(false),
		parquet.WithBatchSize(1), parquet.WithDataPageSize(1<<20), parquet.WithStats(false))
	return write(w, props, columns{rows: int64(n), dataset: same(dataset[:]), cid: random,
		str: func(from, to int64) ([]parquet.ByteArray, []int16) {
			v, def := make([]parquet.ByteArray, to-from), make([]int16, to-from)
			for i := range v {
				v[i], def[i] = big, 1
			}
			return v, def
		}, num: nulls})
}

// DeclaredRows writes rows neurons of dataset that are all one cid and
// nulls: dictionary and run-length encoding keep the file near 1.5 KB
// whatever rows it declares. (The file declares 20 M rows.)
func DeclaredRows(w io.Writer, dataset uuid.UUID, rows int64) error {
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithDictionaryDefault(true),
		parquet.WithStats(false), parquet.WithDataPageSize(1<<30))
	cid := uuid.New()
	return write(w, props, columns{rows: rows, dataset: same(dataset[:]), cid: same(cid[:]), str: nullStrings, num: nulls})
}

// Dictionary writes rows neurons of dataset, each with its own cid and the
// same s3_mesh_location of size bytes: one dictionary entry referenced by
// every row, so the file stays near 17 bytes a row while the column
// decodes to rows × size bytes (64 Ki rows of 512 KiB: 32 GiB).
func Dictionary(w io.Writer, dataset uuid.UUID, rows int64, size int) error {
	val := bytes.Repeat([]byte{'y'}, size)
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithDictionaryDefault(true),
		parquet.WithDictionaryPageSizeLimit(int64(2*size)), parquet.WithStats(false))
	return write(w, props, columns{rows: rows, dataset: same(dataset[:]), cid: random,
		str: func(from, to int64) ([]parquet.ByteArray, []int16) {
			v, def := make([]parquet.ByteArray, to-from), make([]int16, to-from)
			for i := range v {
				v[i], def[i] = val, 1
			}
			return v, def
		}, num: func(from, to int64) ([]float64, []int16) {
			v, def := make([]float64, to-from), make([]int16, to-from)
			for i := range v {
				v[i], def[i] = float64(from)+float64(i), 1
			}
			return v, def
		}})
}
