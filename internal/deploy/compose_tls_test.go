package deploy

import (
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
)

// TestComposeAPIServesTLS: the API gets its certificate and key from
// secrets mounted into it (files under deploy/tls/, which git ignores), so
// it serves HTTPS and Flight over TLS, and its public URL is https://. No
// other service is given them.
func TestComposeAPIServesTLS(t *testing.T) {
	t.Parallel()
	p := load(t)
	api, err := p.GetService("api")
	require.NoError(t, err)
	mounted := map[string]string{} // path in the container → secret
	for _, s := range api.Secrets {
		target := s.Target
		if target == "" {
			target = s.Source
		}
		if !path.IsAbs(target) {
			target = path.Join("/run/secrets", target)
		}
		mounted[target] = s.Source
	}
	wd, err := os.Getwd()
	require.NoError(t, err)
	root := filepath.Join(wd, "..", "..")
	files := map[string]string{}
	for _, v := range []string{"SYNDB_TLS_CERT", "SYNDB_TLS_KEY"} {
		secret, ok := mounted[env(t, api, v)]
		require.True(t, ok, "%s=%s is a secret mounted into the api", v, env(t, api, v))
		def, ok := p.Secrets[secret]
		require.True(t, ok, "secret %s is defined", secret)
		require.NotEmpty(t, def.File, "secret %s is read from a file", secret)
		rel, err := filepath.Rel(root, def.File)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(rel, filepath.Join("deploy", "tls")+string(filepath.Separator)), "%s is under deploy/tls/", def.File)
		files[v] = rel
	}
	require.NotEqual(t, files["SYNDB_TLS_CERT"], files["SYNDB_TLS_KEY"])
	require.NoError(t, config.TLS{Cert: env(t, api, "SYNDB_TLS_CERT"), Key: env(t, api, "SYNDB_TLS_KEY")}.Validate())
	u, err := url.Parse(env(t, api, "SYNDB_API_PUBLIC_URL"))
	require.NoError(t, err)
	require.Equal(t, "https", u.Scheme, "under TLS the API's links are https://")

	// The key stays out of the repository.
	for _, f := range files {
		git := exec.CommandContext(t.Context(), "git", "check-ignore", "-q", f)
		git.Dir = root
		out, err := git.CombinedOutput()
		require.NoError(t, err, "git ignores %s: %s", f, out)
	}

	for _, s := range p.Services {
		if s.Name == "api" {
			continue
		}
		for _, v := range []string{"SYNDB_TLS_CERT", "SYNDB_TLS_KEY"} {
			_, ok := s.Environment[v]
			require.False(t, ok, "service %s is given %s, which only the API reads", s.Name, v)
		}
	}
}
