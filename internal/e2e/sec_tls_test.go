package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/certpin"
	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/health"
)

// apiProcess is a `syndb api` of the hub a test started beside the
// federation's own.
type apiProcess struct {
	// url is its base URL (https:// when it serves TLS).
	url string
	// flightAddr is its Flight server's host:port.
	flightAddr string
	// logFile holds its output.
	logFile string
}

// apiEnv is the environment of a `syndb api` beside the federation's: the
// federation's settings, then extra's.
func apiEnv(extra map[string]string) []string {
	env := os.Environ()
	for k, v := range fed.Env {
		env = append(env, k+"="+v)
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// startAPIProcess starts `syndb api` (the tests' binary) on free ports with
// the federation's settings and extra's over them, and returns once its
// /readyz answers 200 through client. It is stopped when the test ends.
func startAPIProcess(tb testing.TB, name string, extra map[string]string, client *http.Client) apiProcess {
	tb.Helper()
	apiPort, err := devstack.FreePort()
	require.NoError(tb, err)
	flightPort, err := devstack.FreePort()
	require.NoError(tb, err)
	scheme := "http"
	if extra["SYNDB_TLS_CERT"] != "" {
		scheme = "https"
	}
	dir := tb.TempDir()
	a := apiProcess{url: fmt.Sprintf("%s://127.0.0.1:%d", scheme, apiPort), flightAddr: fmt.Sprintf("127.0.0.1:%d", flightPort),
		logFile: filepath.Join(dir, name+".log")}
	ports := map[string]string{
		"SYNDB_API_ADDR": fmt.Sprintf("127.0.0.1:%d", apiPort), "SYNDB_API_PUBLIC_URL": a.url,
		"SYNDB_API_FLIGHT_ADDR": a.flightAddr, "SYNDB_API_FLIGHT_PUBLIC_ADDR": a.flightAddr,
	}
	for k, v := range extra {
		ports[k] = v
	}
	p, err := devstack.StartProcess(tb.Context(), devstack.ProcessSpec{Name: name, Path: syndbBin, Args: []string{"api"},
		Env: apiEnv(ports), Dir: dir, LogFile: a.logFile})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = p.Stop(context.Background(), 10*time.Second) })
	ctx, cancel := context.WithTimeout(tb.Context(), time.Minute)
	defer cancel()
	require.NoError(tb, pollUntil(ctx, func() error {
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited: %w", name, p.Err())
		default:
		}
		return apiReadyVia(ctx, client, a.url)
	}), "see %s", a.logFile)
	return a
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and localhost
// into a temporary directory and returns its files and a pool that trusts
// only it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	require.NoError(t, certpin.WriteSelfSigned(certFile, keyFile, []string{"127.0.0.1", "localhost"}, time.Hour))
	raw, err := os.ReadFile(certFile)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(raw))
	return certFile, keyFile, pool
}

// answer is what httpDo read of a response.
type answer struct {
	status int
	tls    *tls.ConnectionState
	body   []byte
}

// httpDo sends method url with key (none when empty) through client.
func httpDo(t *testing.T, client *http.Client, method, url, key, body string) (answer, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, tls: resp.TLS, body: raw}, err
}

// typeCounts asks each node's ClickHouse for its neurons per type and adds
// them up: the oracle of the federated query of TestAPIOverTLS.
func typeCounts(t *testing.T) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, node := range []string{"lab-a", "lab-b"} {
		rows, err := nodeConn(t, node).Query(t.Context(), "SELECT neuron_type, count() FROM neuron GROUP BY neuron_type")
		require.NoError(t, err)
		for rows.Next() {
			var typ string
			var n uint64
			require.NoError(t, rows.Scan(&typ, &n))
			out[typ] += n
		}
		require.NoError(t, rows.Err())
		_ = rows.Close()
	}
	require.NotEmpty(t, out)
	return out
}

// flightTypeCounts plans the neurons-per-type query on the hub Flight
// server cl with key, reads its one endpoint through a client dialled at
// the endpoint's location with creds, and returns the location and the
// counts.
func flightTypeCounts(t *testing.T, cl flight.Client, key string, creds credentials.TransportCredentials) (string, map[string]uint64) {
	t.Helper()
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+key)
	info, err := cl.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD,
		Cmd: []byte(`{"sql": "SELECT neuron_type, count() AS n FROM neuron GROUP BY neuron_type"}`)})
	require.NoError(t, err)
	require.Len(t, info.GetEndpoint(), 1)
	ep := info.GetEndpoint()[0]
	require.Len(t, ep.GetLocation(), 1)
	loc := ep.GetLocation()[0].GetUri()
	_, addr, ok := strings.Cut(loc, "://")
	require.True(t, ok, loc)
	reader, err := flight.NewClientWithMiddleware(addr, nil, nil, grpc.WithTransportCredentials(creds))
	require.NoError(t, err)
	defer func() { _ = reader.Close() }()
	stream, err := reader.DoGet(ctx, ep.GetTicket())
	require.NoError(t, err)
	rd, err := flight.NewRecordReader(stream)
	require.NoError(t, err)
	defer rd.Release()
	out := map[string]uint64{}
	for rd.Next() {
		rec := rd.RecordBatch()
		types, ok := rec.Column(0).(*array.String)
		require.True(t, ok, "neuron_type is %s", rec.Column(0).DataType())
		counts, ok := rec.Column(1).(*array.Uint64)
		require.True(t, ok, "count() is %s", rec.Column(1).DataType())
		for i := range int(rec.NumRows()) {
			out[types.Value(i)] += counts.Value(i)
		}
	}
	require.NoError(t, rd.Err())
	return loc, out
}

// TestAPIOverTLS starts a second `syndb api` with SYNDB_TLS_CERT and
// SYNDB_TLS_KEY (a certificate made for the test) and reaches it with
// standard clients that trust only that certificate: HTTPS answers /healthz
// and authenticated /v1 calls over TLS 1.3, with https:// links; plain
// HTTP and a client that does not trust the certificate get nothing; and an
// Arrow Flight client over gRPC TLS runs a federated query whose answer is
// the plaintext Flight server's and the nodes' own.
func TestAPIOverTLS(t *testing.T) {
	for _, n := range []string{"lab-a", "lab-b"} {
		waitHealth(t, n, health.Healthy, time.Minute)
	}
	certFile, keyFile, pool := selfSigned(t)
	trusting := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	a := startAPIProcess(t, "api-tls", map[string]string{"SYNDB_TLS_CERT": certFile, "SYNDB_TLS_KEY": keyFile}, trusting)
	require.True(t, strings.HasPrefix(a.url, "https://"))

	res, err := httpDo(t, trusting, http.MethodGet, a.url+"/healthz", "", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	require.Equal(t, uint16(tls.VersionTLS13), res.tls.Version)

	// An authenticated call: a federated query, answered as the nodes do.
	res, err = httpDo(t, trusting, http.MethodPost, a.url+"/v1/query", fed.APIKey, `{"sql": "SELECT count() AS n FROM neuron"}`)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	first, _, _ := strings.Cut(string(res.body), "\n")
	var row struct{ N uint64 }
	require.NoError(t, json.Unmarshal([]byte(first), &row), first)
	require.Equal(t, nodeCount(t, "lab-a", "neuron")+nodeCount(t, "lab-b", "neuron"), row.N)
	// Keys are checked over TLS as over HTTP.
	res, err = httpDo(t, trusting, http.MethodGet, a.url+"/v1/federation/clusters", "", "")
	require.NoError(t, err)
	requireError(t, http.StatusUnauthorized, res.status, res.body, "unauthorized", "no key over TLS")
	// Links the API hands out are https:// (its public URL). Each node
	// has its seeded datasets in the catalog once it registered.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var page api.DatasetSearch
	require.NoError(t, pollUntil(ctx, func() error {
		res, err := httpDo(t, trusting, http.MethodGet, a.url+"/v1/datasets?limit=1", fed.APIKey, "")
		if err != nil {
			return err
		}
		if err := json.Unmarshal(res.body, &page); err != nil {
			return fmt.Errorf("%d %s: %w", res.status, res.body, err)
		}
		if page.Total < 2 {
			return fmt.Errorf("%d datasets in the catalog", page.Total)
		}
		return nil
	}))
	require.True(t, strings.HasPrefix(page.Next, a.url+"/v1/datasets?"), page.Next)

	// Plain HTTP on the TLS port gets Go's refusal, no API answer.
	plainURL := "http://" + strings.TrimPrefix(a.url, "https://")
	res, err = httpDo(t, &http.Client{Timeout: 30 * time.Second}, http.MethodGet, plainURL+"/v1/federation/clusters", fed.APIKey, "")
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Contains(t, string(res.body), "HTTPS server")
	require.NotContains(t, string(res.body), "lab-a")
	// A client that trusts only the system's roots refuses the certificate.
	_, err = httpDo(t, &http.Client{Timeout: 30 * time.Second}, http.MethodGet, a.url+"/healthz", "", "")
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown)

	// Flight over TLS: the location says grpc+tls, the answer is the
	// plaintext server's and the nodes'.
	tlsCreds := credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	cl, err := flight.NewClientWithMiddleware(a.flightAddr, nil, nil, grpc.WithTransportCredentials(tlsCreds))
	require.NoError(t, err)
	defer func() { _ = cl.Close() }()
	loc, overTLS := flightTypeCounts(t, cl, fed.APIKey, tlsCreds)
	require.Equal(t, "grpc+tls://"+a.flightAddr, loc)
	plain, err := flight.NewClientWithMiddleware(fed.Env["SYNDB_API_FLIGHT_ADDR"], nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer func() { _ = plain.Close() }()
	loc, overPlain := flightTypeCounts(t, plain, fed.APIKey, insecure.NewCredentials())
	require.Equal(t, "grpc://"+fed.Env["SYNDB_API_FLIGHT_PUBLIC_ADDR"], loc)
	require.Equal(t, overPlain, overTLS)
	require.Equal(t, typeCounts(t), overTLS)

	_, err = cl.GetFlightInfo(t.Context(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte(`{"sql": "SELECT 1"}`)})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "no key over TLS: %v", err)
	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext gRPC":       insecure.NewCredentials(),
		"an untrusting client": credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12}),
	} {
		other, err := flight.NewClientWithMiddleware(a.flightAddr, nil, nil, grpc.WithTransportCredentials(creds))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+fed.APIKey), 10*time.Second)
		_, err = other.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte(`{"sql": "SELECT 1"}`)})
		cancel()
		_ = other.Close()
		require.Equal(t, codes.Unavailable, status.Code(err), "%s: %v", name, err)
	}

	// Each API says at start how it serves.
	logged, err := os.ReadFile(a.logFile)
	require.NoError(t, err)
	require.Contains(t, string(logged), "api listening over TLS")
	require.Contains(t, string(logged), "flight listening over TLS")
	logged, err = os.ReadFile(filepath.Join(fedRoot, "logs", "api.log"))
	require.NoError(t, err)
	require.Contains(t, string(logged), "api listening in plaintext")
}

// TestAPIRefusesBadTLSFiles: `syndb api` with a key of another certificate,
// a missing certificate file, or a certificate without its key exits at
// once with an error that names the problem, and listens on nothing.
func TestAPIRefusesBadTLSFiles(t *testing.T) {
	certFile, _, _ := selfSigned(t)
	_, otherKey, _ := selfSigned(t)
	port, err := devstack.FreePort()
	require.NoError(t, err)
	for _, tc := range []struct {
		name       string
		cert, key  string
		wantOutput string
	}{
		{"another certificate's key", certFile, otherKey, "private key does not match public key"},
		{"a missing certificate", filepath.Join(t.TempDir(), "none.crt"), otherKey, "none.crt"},
		{"a certificate without its key", certFile, "", "SYNDB_TLS_CERT and SYNDB_TLS_KEY: give both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, syndbBin, "api")
			cmd.Dir = t.TempDir()
			cmd.Env = apiEnv(map[string]string{"SYNDB_TLS_CERT": tc.cert, "SYNDB_TLS_KEY": tc.key,
				"SYNDB_API_ADDR": fmt.Sprintf("127.0.0.1:%d", port), "SYNDB_API_PUBLIC_URL": fmt.Sprintf("https://127.0.0.1:%d", port)})
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "%s", out)
			require.NotEqual(t, 0, exit.ExitCode())
			require.Contains(t, string(out), tc.wantOutput)
			require.NotContains(t, string(out), "listening")
			require.True(t, devstack.PortFree(port))
		})
	}
}
