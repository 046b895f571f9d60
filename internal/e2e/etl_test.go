package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/domain"
)

// upload stages body under filename and returns the object.
func upload(t testing.TB, filename string, body []byte) string {
	t.Helper()
	up := newUpload(t, filename)
	resp, err := postUpload(t.Context(), up, filename, bytes.NewReader(body), int64(len(body)))
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(raw))
	return up.Object
}

// newUpload asks the API for an upload of filename.
func newUpload(t testing.TB, filename string) api.Upload {
	t.Helper()
	status, raw := apiDo(t, http.MethodPost, "/v1/datasets/uploads", fmt.Sprintf(`{"filename": %q}`, filename))
	require.Equal(t, http.StatusCreated, status, string(raw))
	var up api.Upload
	require.NoError(t, json.Unmarshal(raw, &up))
	return up
}

// postUpload sends size bytes of body to an upload's pre-signed POST
// policy as a multipart form (the policy's fields, then the file).
func postUpload(ctx context.Context, up api.Upload, filename string, body io.Reader, size int64) (*http.Response, error) {
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	for k, v := range up.Fields {
		if err := mw.WriteField(k, v); err != nil {
			return nil, err
		}
	}
	if _, err := mw.CreateFormFile("file", filename); err != nil {
		return nil, err
	}
	tail := "\r\n--" + mw.Boundary() + "--\r\n"
	req, err := http.NewRequestWithContext(ctx, up.Method, up.URL, io.MultiReader(&head, body, strings.NewReader(tail)))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(head.Len()) + size + int64(len(tail))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return http.DefaultClient.Do(req)
}

func startEtl(t *testing.T, object, table, dataset string) api.JobStarted {
	t.Helper()
	spec := fmt.Sprintf(`{"object": %q, "table": %q, "node": "lab-a", "dataset": {"dataset_id": %q,
		"name": "ETL %s", "owner": "etl-test", "animal": "mouse", "microscopy": "SBEM", "genetic_manipulations": ["Thy1-GFP"]}}`,
		object, table, dataset, table)
	status, raw := apiDo(t, http.MethodPost, "/v1/jobs", `{"kind": "etl", "spec": `+spec+`}`)
	require.Equal(t, http.StatusAccepted, status, string(raw))
	var st api.JobStarted
	require.NoError(t, json.Unmarshal(raw, &st))
	return st
}

func datasetRows(t *testing.T, table, dataset string) uint64 {
	t.Helper()
	var n uint64
	require.NoError(t, nodeConn(t, "lab-a").QueryRow(t.Context(),
		fmt.Sprintf("SELECT count() FROM %s WHERE dataset_id = toUUID('%s')", table, dataset)).Scan(&n))
	return n
}

func etlResult(t *testing.T, js api.JobStatus) domain.EtlResult {
	t.Helper()
	var res domain.EtlResult
	require.NoError(t, json.Unmarshal(js.Result, &res))
	return res
}

// TestEtl: good CSV and Parquet files load into a node through Flight (over
// libp2p) and register their dataset; a bad file loads nothing and says where it is bad.
func TestEtl(t *testing.T) {
	routableNodes(t)
	dataset := uuid.New()

	// Neurons, as CSV.
	var csv strings.Builder
	csv.WriteString("cid,voxel_volume,neuron_type,terminal_count\n")
	neurons := make([]uuid.UUID, 1000)
	for i := range neurons {
		neurons[i] = uuid.New()
		fmt.Fprintf(&csv, "%s,%g,pyramidal,%d\n", neurons[i], float64(i)/7, i%13)
	}
	obj := upload(t, "neurons.csv", []byte(csv.String()))
	loaded := overLibp2p(t, "lab-a")
	started := startEtl(t, obj, "neuron", dataset.String())
	js := waitJob(t, started.JobID, 2*time.Minute)
	require.Equal(t, domain.JobCompleted, js.State, "%s %s", js.Error, js.Result)
	loaded()
	recordHistoryTo(t, temporalClient(t), started.WorkflowID, "", os.Getenv("SYNDB_RECORD_ETL_HISTORY"))
	res := etlResult(t, js)
	require.Equal(t, int64(1000), res.Loaded.Rows)
	require.True(t, res.Registered)
	require.Equal(t, uint64(1000), datasetRows(t, "neuron", dataset.String()))
	require.Equal(t, uint64(1), datasetRows(t, "datasets", dataset.String()), "the dataset is registered")
	_, err := s3Client(t).StatObject(t.Context(), "syndb-staging", obj, minio.StatObjectOptions{})
	require.Error(t, err, "the staged file is removed after the load")
	require.True(t, res.CatalogRefreshed)
	// The refreshed catalog finds the new dataset.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		status, raw := apiDo(t, http.MethodGet, "/v1/datasets?q=ETL+neuron&node=lab-a", "")
		if status != http.StatusOK {
			return fmt.Errorf("search answered %d: %s", status, raw)
		}
		if !strings.Contains(string(raw), dataset.String()) {
			return fmt.Errorf("dataset %s not in the catalog yet", dataset)
		}
		return nil
	}))

	// Synapses whose parents are those neurons, as Parquet.
	obj = upload(t, "synapses.parquet", synapseParquet(t, dataset, neurons, 500, false))
	js = waitJob(t, startEtl(t, obj, "synapse", dataset.String()).JobID, 2*time.Minute)
	require.Equal(t, domain.JobCompleted, js.State, "%s %s", js.Error, js.Result)
	require.Equal(t, uint64(500), datasetRows(t, "synapse", dataset.String()))

	// A bad CSV: a bad UUID, a bad number, a parent that does not exist,
	// a row of another dataset. Nothing loads; the report names each.
	other := uuid.New()
	bad := "cid,parent_id,voxel_volume,dataset_id\n" +
		fmt.Sprintf("%s,%s,1.5,%s\n", uuid.New(), neurons[0], dataset) +
		fmt.Sprintf("not-a-uuid,%s,1.5,%s\n", neurons[1], dataset) +
		fmt.Sprintf("%s,%s,big,%s\n", uuid.New(), neurons[2], dataset) +
		fmt.Sprintf("%s,%s,2,%s\n", uuid.New(), uuid.New(), dataset) +
		fmt.Sprintf("%s,%s,2,%s\n", uuid.New(), neurons[3], other)
	obj = upload(t, "mito.csv", []byte(bad))
	before := datasetRows(t, "mitochondria", dataset.String())
	js = waitJob(t, startEtl(t, obj, "mitochondria", dataset.String()).JobID, 2*time.Minute)
	require.Equal(t, domain.JobFailed, js.State)
	require.Contains(t, js.Error, "nothing was loaded")
	res = etlResult(t, js)
	found := map[string]bool{}
	for _, p := range res.Report.Problems {
		found[fmt.Sprintf("%d/%s", p.Row, p.Column)] = true
	}
	for _, want := range []string{"2/cid", "3/voxel_volume", "5/dataset_id"} {
		require.True(t, found[want], "the report names row/column %s: %+v", want, res.Report.Problems)
	}
	require.Equal(t, before, datasetRows(t, "mitochondria", dataset.String()), "nothing loaded")
	_, err = s3Client(t).StatObject(t.Context(), "syndb-staging", obj, minio.StatObjectOptions{})
	require.NoError(t, err, "a failed job's staged file stays")

	// A bad parent alone (the rows parse): found by the relation check.
	obj = upload(t, "mito2.csv", []byte(fmt.Sprintf("cid,parent_id\n%s,%s\n", uuid.New(), uuid.New())))
	js = waitJob(t, startEtl(t, obj, "mitochondria", dataset.String()).JobID, 2*time.Minute)
	require.Equal(t, domain.JobFailed, js.State)
	res = etlResult(t, js)
	require.Len(t, res.Report.Problems, 1)
	require.Equal(t, "parent_id", res.Report.Problems[0].Column)
	require.Contains(t, res.Report.Problems[0].Problem, "no neuron")

	// Bad specs are refused at once.
	for _, spec := range []string{
		`{"object": "elsewhere/x.csv", "table": "neuron", "node": "lab-a", "dataset": {"dataset_id": "` + dataset.String() + `", "name": "x"}}`,
		`{"object": "uploads/x.txt", "table": "neuron", "node": "lab-a", "dataset": {"dataset_id": "` + dataset.String() + `", "name": "x"}}`,
		`{"object": "uploads/x.csv", "table": "datasets", "node": "lab-a", "dataset": {"dataset_id": "` + dataset.String() + `", "name": "x"}}`,
		`{"object": "uploads/x.csv", "table": "neuron", "node": "lab-a", "dataset": {"dataset_id": "nope", "name": "x"}}`,
	} {
		status, raw := apiDo(t, http.MethodPost, "/v1/jobs", `{"kind": "etl", "spec": `+spec+`}`)
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", spec, raw)
	}
	status, _ := apiDo(t, http.MethodPost, "/v1/datasets/uploads", `{"filename": "../../etc/passwd.csv"}`)
	require.Equal(t, http.StatusBadRequest, status)
}

func s3Client(t *testing.T) *minio.Client {
	t.Helper()
	c, err := minio.New(fed.Env["SYNDB_S3_ENDPOINT"], &minio.Options{
		Creds: credentials.NewStaticV4(fed.Env["SYNDB_S3_ACCESS_KEY"], fed.Env["SYNDB_S3_SECRET_KEY"], "")})
	require.NoError(t, err)
	return c
}

// synapseParquet writes n synapses of dataset between the neurons.
func synapseParquet(t *testing.T, dataset uuid.UUID, neurons []uuid.UUID, n int, _ bool) []byte {
	t.Helper()
	ut := extensions.NewUUIDType()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "dataset_id", Type: ut},
		{Name: "cid", Type: ut},
		{Name: "parent_id", Type: ut, Nullable: true},
		{Name: "pre_id", Type: ut, Nullable: true},
		{Name: "post_id", Type: ut, Nullable: true},
		{Name: "cleft_width", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i := range n {
		b.Field(0).(*extensions.UUIDBuilder).Append(dataset)
		b.Field(1).(*extensions.UUIDBuilder).Append(uuid.New())
		b.Field(2).(*extensions.UUIDBuilder).Append(neurons[i%len(neurons)])
		b.Field(3).(*extensions.UUIDBuilder).Append(neurons[i%len(neurons)])
		b.Field(4).(*extensions.UUIDBuilder).Append(neurons[(i*7+1)%len(neurons)])
		b.Field(5).(*array.Float64Builder).Append(15 + float64(i%5))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(schema, &buf, parquet.NewWriterProperties(), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	require.NoError(t, err)
	require.NoError(t, w.Write(rec))
	require.NoError(t, w.Close())
	return buf.Bytes()
}
