package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/etlfixture"
)

// defaultUploadCap is SYNDB_ETL_MAX_UPLOAD_BYTES's default, which the
// test federation keeps.
const defaultUploadCap = 256 << 20

// zeros reads zero bytes forever.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// workerMemory reads the worker process's resident memory and its peak
// (VmRSS, VmHWM) in KiB.
func workerMemory(t *testing.T) (rss, hwm int64) {
	t.Helper()
	pid, ok := fed.HubPid("worker")
	require.True(t, ok, "the worker runs")
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm
}

// failedWith waits for an ETL job that must fail and returns its report's
// problems (the first ones listed), and their count.
func failedWith(t *testing.T, jobID string) (string, int64) {
	t.Helper()
	js := waitJob(t, jobID, 3*time.Minute)
	require.Equal(t, domain.JobFailed, js.State, "%s %s", js.Error, js.Result)
	require.Contains(t, js.Error, "nothing was loaded")
	rep := etlResult(t, js).Report
	var b strings.Builder
	for _, p := range rep.Problems[:min(len(rep.Problems), 3)] {
		fmt.Fprintf(&b, "row %d column %q: %s\n", p.Row, p.Column, p.Problem)
	}
	return b.String(), rep.ProblemCount
}

// TestSecUploadCap: an upload is a POST policy that S3 enforces: a file
// within the cap is staged, one over it is refused by MinIO itself
// (EntityTooLarge) and never staged; an object over the cap that reached
// staging another way fails the ETL job's validation with the reason.
func TestSecUploadCap(t *testing.T) {
	routableNodes(t)
	up := newUpload(t, "cap.csv")
	require.Equal(t, http.MethodPost, up.Method)
	require.Equal(t, int64(defaultUploadCap), up.MaxBytes)
	require.NotEmpty(t, up.Fields["policy"])
	s3 := s3Client(t)

	body := []byte("cid,voxel_volume\n" + uuid.New().String() + ",1\n")
	resp, err := postUpload(t.Context(), up, "cap.csv", bytes.NewReader(body), int64(len(body)))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	info, err := s3.StatObject(t.Context(), "syndb-staging", up.Object, minio.StatObjectOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(len(body)), info.Size)
	t.Cleanup(func() {
		_ = s3.RemoveObject(context.Background(), "syndb-staging", up.Object, minio.RemoveObjectOptions{})
	})

	over := newUpload(t, "over.csv")
	resp, err = postUpload(t.Context(), over, "over.csv", io.LimitReader(zeros{}, defaultUploadCap+1), defaultUploadCap+1)
	if err == nil { // MinIO may answer and close before the whole body is sent
		raw, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		t.Logf("an upload of the cap + 1 byte: %d %s", resp.StatusCode, raw)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, string(raw))
		require.Contains(t, string(raw), "EntityTooLarge")
	} else {
		t.Logf("an upload of the cap + 1 byte: %v", err)
	}
	_, err = s3.StatObject(t.Context(), "syndb-staging", over.Object, minio.StatObjectOptions{})
	require.Equal(t, "NoSuchKey", minio.ToErrorResponse(err).Code, "the refused upload is not staged")

	// An object over the cap put into staging with the store's own keys.
	big := fmt.Sprintf("uploads/%s/big.csv", uuid.New())
	_, err = s3.PutObject(t.Context(), "syndb-staging", big, io.LimitReader(zeros{}, defaultUploadCap+1), defaultUploadCap+1, minio.PutObjectOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s3.RemoveObject(context.Background(), "syndb-staging", big, minio.RemoveObjectOptions{}) })
	problems, _ := failedWith(t, startEtl(t, big, "neuron", uuid.New().String()).JobID)
	require.Contains(t, problems, fmt.Sprintf("the staged file is %d bytes, over the %d-byte upload cap (SYNDB_ETL_MAX_UPLOAD_BYTES)",
		defaultUploadCap+1, defaultUploadCap))
}

// TestSecUploadHostileParquet: the two Parquet files (65 KB with
// three 200 MB strings; a tiny file declaring 20 M rows) fail the ETL
// job's validation with the cap they break, and a file whose one 256 KiB
// dictionary value on each of 8 Ki rows decodes to 2 GiB is read through
// (to find its rows are another dataset's) in batches; the worker's peak
// memory (VmHWM) grows by less than 256 MiB over the three.
func TestSecUploadHostileParquet(t *testing.T) {
	routableNodes(t)
	dataset := uuid.New()
	var strs, rows, dict bytes.Buffer
	require.NoError(t, etlfixture.BigStrings(&strs, dataset, 3, 200<<20))
	require.NoError(t, etlfixture.DeclaredRows(&rows, dataset, 20_000_000))
	other := uuid.New()
	require.NoError(t, etlfixture.Dictionary(&dict, other, 8<<10, 256<<10))
	rss0, hwm0 := workerMemory(t)
	for _, tc := range []struct {
		name, problem string
		count         int64
		body          []byte
	}{
		{"strings.parquet", `column "s3_mesh_location": row group 0: a column chunk of 629145705 bytes uncompressed, over the 536870912-byte column-chunk cap`, 1, strs.Bytes()},
		{"rows.parquet", "the file declares 20000000 rows in", 1, rows.Bytes()},
		// Every row is read and found to be another dataset's.
		{"dictionary.parquet", `row 1 column "dataset_id": belongs to another dataset than the job's`, 8 << 10, dict.Bytes()},
	} {
		obj := upload(t, tc.name, tc.body)
		t.Cleanup(func() {
			_ = s3Client(t).RemoveObject(context.Background(), "syndb-staging", obj, minio.RemoveObjectOptions{})
		})
		problems, count := failedWith(t, startEtl(t, obj, "neuron", dataset.String()).JobID)
		t.Logf("%s (%d bytes): %d problems: %s", tc.name, len(tc.body), count, problems)
		require.Contains(t, problems, tc.problem)
		require.Equal(t, tc.count, count)
	}
	rss1, hwm1 := workerMemory(t)
	t.Logf("worker memory: VmRSS %d → %d MiB, VmHWM %d → %d MiB", rss0>>10, rss1>>10, hwm0>>10, hwm1>>10)
	require.Less(t, hwm1-hwm0, int64(256<<10), "the worker's peak grows by less than 256 MiB")
	require.Zero(t, datasetRows(t, "neuron", dataset.String()), "nothing loaded")
}

// TestSecUploadCSVBOM: a CSV that starts with a UTF-8 byte-order mark
// (as spreadsheets write it) loads like one without.
func TestSecUploadCSVBOM(t *testing.T) {
	routableNodes(t)
	dataset := uuid.New()
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	csv := "\uFEFFcid,neuron_type,voxel_volume\n"
	for i, id := range ids {
		csv += fmt.Sprintf("%s,bom-%d,%d.5\n", id, i, i)
	}
	obj := upload(t, "bom.csv", []byte(csv))
	js := waitJob(t, startEtl(t, obj, "neuron", dataset.String()).JobID, 2*time.Minute)
	require.Equal(t, domain.JobCompleted, js.State, "%s %s", js.Error, js.Result)
	require.Equal(t, uint64(3), datasetRows(t, "neuron", dataset.String()))
	var typ string
	var vol float64
	require.NoError(t, nodeConn(t, "lab-a").QueryRow(t.Context(), fmt.Sprintf(
		"SELECT assumeNotNull(neuron_type), assumeNotNull(voxel_volume) FROM neuron WHERE dataset_id = toUUID('%s') AND cid = toUUID('%s')",
		dataset, ids[2])).Scan(&typ, &vol))
	require.Equal(t, "bom-2", typ)
	require.InDelta(t, 2.5, vol, 1e-9)
}
