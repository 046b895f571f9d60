package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
)

// TestCreateUpload: an upload is a POST policy for one object of the
// staging bucket whose size S3 caps at SYNDB_ETL_MAX_UPLOAD_BYTES.
func TestCreateUpload(t *testing.T) {
	t.Parallel()
	objects, err := minio.New("s3.test:9000", &minio.Options{Creds: credentials.NewStaticV4("k", "s", ""), Region: "us-east-1"})
	require.NoError(t, err)
	cfg := config.API{PublicURL: "http://hub", S3: config.S3{StagingBucket: "staging"}, ETL: config.ETL{MaxUploadBytes: 12345}}
	srv := httptest.NewServer(New(cfg, Deps{Store: fakeStore{}, Objects: objects, Log: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(srv.Close)

	status, _, raw := do(t, srv, http.MethodPost, "/v1/datasets/uploads", "Bearer "+goodKey, `{"filename": "n.csv"}`)
	require.Equal(t, http.StatusCreated, status, string(raw))
	var up Upload
	require.NoError(t, json.Unmarshal(raw, &up))
	require.Equal(t, http.MethodPost, up.Method)
	require.Equal(t, "http://s3.test:9000/staging/", up.URL)
	require.Equal(t, int64(12345), up.MaxBytes)
	require.Equal(t, up.Object, up.Fields["key"])
	require.Regexp(t, `^uploads/[0-9a-f-]{36}/n\.csv$`, up.Object)

	doc, err := base64.StdEncoding.DecodeString(up.Fields["policy"])
	require.NoError(t, err)
	var policy struct {
		Conditions []json.RawMessage `json:"conditions"`
	}
	require.NoError(t, json.Unmarshal(doc, &policy))
	conds := map[string]bool{}
	for _, c := range policy.Conditions {
		var b bytes.Buffer
		require.NoError(t, json.Compact(&b, c))
		conds[b.String()] = true
	}
	require.True(t, conds[`["content-length-range",0,12345]`], "the policy caps the size: %s", doc)
	require.True(t, conds[`["eq","$bucket","staging"]`], "%s", doc)
	require.True(t, conds[`["eq","$key","`+up.Object+`"]`], "%s", doc)

	status, _, _ = do(t, srv, http.MethodPost, "/v1/datasets/uploads", "Bearer "+goodKey, `{"filename": "../x.csv"}`)
	require.Equal(t, http.StatusBadRequest, status)
}
