package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/seed"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/schemas"
)

// seed writes synthetic datasets into every node's warehouse, bringing it to
// the schema the data needs (and no further: the rest is schema sync's work),
// with their meshes in the hub's S3, recorded in its PostgreSQL.
func (f *Federation) seed(ctx context.Context) error {
	migs, err := schemas.ClickHouseMigrations()
	if err != nil {
		return err
	}
	objects, err := minio.New(f.Env["SYNDB_S3_ENDPOINT"], &minio.Options{
		Creds: credentials.NewStaticV4(devstack.MinIOUser, devstack.MinIOPassword, "")})
	if err != nil {
		return fmt.Errorf("seed: s3 client: %w", err)
	}
	var meshes []store.Mesh
	for _, n := range f.opts.Nodes {
		conn, err := clickhouse.Open(ctx, config.ClickHouse{Addr: f.Stack.Nodes[n.Name].Addr(), User: "default", Database: "syndb"})
		if err != nil {
			return fmt.Errorf("seed %s: %w", n.Name, err)
		}
		res, err := seed.Seed(ctx, conn, migs, seed.Options{Node: n.Name, Datasets: f.opts.SeedDatasets, Rows: f.opts.SeedRows,
			Objects: objects, MeshBucket: MeshesBucket, MeshRows: f.opts.SeedMeshes})
		_ = conn.Close()
		if err != nil {
			return fmt.Errorf("seed %s: %w", n.Name, err)
		}
		for _, m := range res.Meshes {
			meshes = append(meshes, store.MeshOf(m.Spec, m.Reading, ""))
		}
		f.opts.Log.Info("node seeded", "node", n.Name, "datasets_created", res.Created, "datasets_present", res.Skipped,
			"rows", res.Rows, "meshes", len(res.Meshes), "schema_version", res.SchemaTo)
	}
	if len(meshes) == 0 {
		return nil
	}
	st, err := store.Open(ctx, f.Stack.Postgres.DSN())
	if err != nil {
		return err
	}
	defer st.Close()
	return st.RecordMeshes(ctx, meshes)
}

// MeshesBucket is the dev federation's meshes bucket (the default of
// SYNDB_S3_MESHES_BUCKET).
const MeshesBucket = "syndb-meshes"

// enroll creates the registry entries of the dev nodes, with enrollment
// tokens, unless a name is already bound to that node's identity. A name
// bound to another identity (its key file was deleted) is re-enrolled.
func (f *Federation) enroll(ctx context.Context, names []string) error {
	st, err := store.Open(ctx, f.Stack.Postgres.DSN())
	if err != nil {
		return err
	}
	defer st.Close()
	for _, name := range names {
		id, err := f.NodePeerID(name)
		if err != nil {
			return err
		}
		c, err := st.Cluster(ctx, name)
		switch {
		case err == nil && c.PeerID == id && c.Status == "active":
			continue
		case err == nil && c.PeerID != "" && c.Status == "active":
			f.opts.Log.Warn("node identity changed; re-enrolling", "node", name)
			if _, err := st.RevokeCluster(ctx, name); err != nil {
				return err
			}
		case err != nil && !errors.Is(err, domain.ErrNotFound):
			return err
		}
		e, err := st.CreateCluster(ctx, name, time.Hour, "")
		if err != nil {
			return fmt.Errorf("enroll %s: %w", name, err)
		}
		f.tokens[name] = e.Token
	}
	return nil
}

// apiKey returns the dev API key kept in Root/dev-api-key, creating it (and
// the hub schema) when missing or no longer valid.
func (f *Federation) apiKey(ctx context.Context) (string, error) {
	st, err := store.Open(ctx, f.Stack.Postgres.DSN())
	if err != nil {
		return "", err
	}
	defer st.Close()
	path := filepath.Join(f.opts.Root, "dev-api-key")
	if raw, err := os.ReadFile(path); err == nil {
		key := strings.TrimSpace(string(raw))
		if _, err := st.Authenticate(ctx, key); err == nil {
			return key, nil
		}
	}
	// The dev key administers the dev federation: it must ask for admin,
	// as every key is a reader unless it does.
	key, _, err := st.NewAPIKey(ctx, store.KeySpec{Account: "dev", Name: "dev", Role: store.RoleAdmin, CreatedBy: "syndb dev"})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save dev api key: %w", err)
	}
	return key, nil
}

// waitReady polls until the API is ready and every node registered with its
// own peer ID, or a process died.
func (f *Federation) waitReady(ctx context.Context, names []string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, f.Stack.Postgres.DSN())
	if err != nil {
		return err
	}
	defer st.Close()
	want := map[string]string{}
	for _, n := range names {
		if want[n], err = f.NodePeerID(n); err != nil {
			return err
		}
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = f.ready(ctx, st, want)
		if last == nil {
			return nil
		}
		if err := f.died(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("federation not ready: %w", last)
		case <-tick.C:
		}
	}
}

func (f *Federation) ready(ctx context.Context, st *store.Store, want map[string]string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.APIURL+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := f.APIClient.Do(req)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("api /readyz answered %d", resp.StatusCode)
	}
	cs, err := st.Clusters(ctx, true)
	if err != nil {
		return err
	}
	got := map[string]string{}
	for _, c := range cs {
		got[c.Name] = c.PeerID
	}
	for name, id := range want {
		if got[name] != id {
			return fmt.Errorf("node %s has not registered yet", name)
		}
	}
	return nil
}

// died reports a process that exited on its own.
func (f *Federation) died() error {
	for name, p := range f.hub {
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited: %w (see %s)", name, p.Err(), filepath.Join(f.opts.Root, "logs", name+".log"))
		default:
		}
	}
	for name, p := range f.nodes {
		select {
		case <-p.Done():
			return fmt.Errorf("node %s exited: %w (see %s)", name, p.Err(), filepath.Join(f.opts.Root, "logs", name+".log"))
		default:
		}
	}
	return nil
}
