package api

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/registry"
)

// clusterList is a registry loader over a fixed list.
type clusterList []domain.Cluster

func (l clusterList) Clusters(context.Context, bool) ([]domain.Cluster, error) { return l, nil }

func TestPathsOf(t *testing.T) {
	t.Parallel()
	reg, err := registry.New(t.Context(), clusterList{
		{Name: "lab-a", HealthPath: "direct"},
		{Name: "lab-b", HealthPath: "relayed"},
		{Name: "lab-c", HealthPath: "hole-punched"},
		{Name: "lab-new"},
	}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	snap := reg.Snapshot()
	cases := []struct {
		name  string
		nodes []string
		want  map[string]string
	}{
		{"each path", []string{"lab-a", "lab-b", "lab-c"}, map[string]string{"lab-a": "direct", "lab-b": "relayed", "lab-c": "hole-punched"}},
		{"before the first answered ping", []string{"lab-new"}, map[string]string{"lab-new": "unknown"}},
		{"not in the snapshot", []string{"gone"}, map[string]string{"gone": "unknown"}},
		{"none", nil, map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, pathsOf(snap, tc.nodes))
		})
	}
}
