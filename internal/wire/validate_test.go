package wire

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRegisterRequestClickHouseDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, db string
		ok       bool
	}{
		{"empty: an older agent", "", true},
		{"default", "syndb", true},
		{"underscores and digits", "syndb_lab_c2", true},
		{"leading underscore", "_scratch", true},
		{"mixed case", "SynDB_C", true},
		{"64 characters", "d" + strings.Repeat("x", 63), true},
		{"65 characters", "d" + strings.Repeat("x", 64), false},
		{"leading digit", "1syndb", false},
		{"dash", "syndb-c", false},
		{"dot: another database's table", "syndb.neuron", false},
		{"quote", "syndb', 'neuron", false},
		{"backtick", "`syndb`", false},
		{"space", "syndb c", false},
		{"statement", "syndb; DROP DATABASE syndb", false},
		{"newline", "syndb\n", false},
		{"non-ASCII letter", "syndbé", false},
		{"NUL", "syndb\x00", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := &RegisterRequest{Name: "lab-c", ClickhouseAddr: "127.0.0.1:9000", ClickhouseDatabase: tc.db}
			err := req.Validate()
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "clickhouse_database")
			require.ErrorContains(t, err, "must be 1-64 characters of A-Z, a-z, 0-9 and '_', not starting with a digit")
		})
	}
}

// TestRegisterRequestFlightCert: the Flight certificate pin is absent (a
// plaintext listener) or exactly a SHA-256.
func TestRegisterRequestFlightCert(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		pin  []byte
		ok   bool
	}{
		{"none: plaintext", nil, true},
		{"a SHA-256", make([]byte, 32), true},
		{"short", make([]byte, 31), false},
		{"long", make([]byte, 33), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := &RegisterRequest{Name: "lab-c", FlightCertSha256: tc.pin}
			err := req.Validate()
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "flight_cert_sha256 is")
			require.ErrorContains(t, err, "not a SHA-256 (32 bytes)")
		})
	}
}

func TestMeshMetricsRequestValidate(t *testing.T) {
	t.Parallel()
	good := func() *MeshMetricsRequest {
		return &MeshMetricsRequest{Table: "neuron", DatasetId: "8f0ec595-47d4-5cb0-a6d4-cee4d8efb6e8",
			Cid: "1b4e28ba-2fa1-11d2-883f-0016d3cca427", MeshVolume: 1, MeshSurfaceArea: 6, MeshAreaVolumeRatio: 6,
			MeshSphericity: 0.806, S3MeshLocation: "s3://syndb-meshes/lab-a/8f0ec595-47d4-5cb0-a6d4-cee4d8efb6e8/neuron/x.glb"}
	}
	require.NoError(t, good().Validate())
	check := good()
	check.CheckOnly, check.MeshVolume, check.S3MeshLocation = true, 0, ""
	require.NoError(t, check.Validate(), "a look-up carries no values")
	for name, edit := range map[string]func(r *MeshMetricsRequest){
		"table":            func(r *MeshMetricsRequest) { r.Table = "neuron; DROP" },
		"dataset":          func(r *MeshMetricsRequest) { r.DatasetId = "x" },
		"cid":              func(r *MeshMetricsRequest) { r.Cid = "x')" },
		"NaN volume":       func(r *MeshMetricsRequest) { r.MeshVolume = math.NaN() },
		"infinite area":    func(r *MeshMetricsRequest) { r.MeshSurfaceArea = math.Inf(1) },
		"negative ratio":   func(r *MeshMetricsRequest) { r.MeshAreaVolumeRatio = -1 },
		"zero sphericity":  func(r *MeshMetricsRequest) { r.MeshSphericity = 0 },
		"subnormal volume": func(r *MeshMetricsRequest) { r.MeshVolume = 5e-324 },
		"quote":            func(r *MeshMetricsRequest) { r.S3MeshLocation = "s3://syndb-meshes/a'b.glb" },
		"not s3":           func(r *MeshMetricsRequest) { r.S3MeshLocation = "http://x/a.glb" },
		"dot dot":          func(r *MeshMetricsRequest) { r.S3MeshLocation = "s3://syndb-meshes/../a.glb" },
		"no key":           func(r *MeshMetricsRequest) { r.S3MeshLocation = "s3://syndb-meshes/" },
	} {
		r := good()
		edit(r)
		require.Error(t, r.Validate(), name)
	}
}
