package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/domain"
)

func TestCoveragePolicy(t *testing.T) {
	t.Parallel()
	two := QueryMeta{Included: []string{"lab-a", "lab-b"}, Excluded: []domain.Exclusion{{Name: "lab-c", Reason: "unreachable"}}}
	for _, tc := range []struct {
		body    string
		refused bool
	}{
		{`"allow"`, false},
		{`"deny"`, true},
		{`{"min_nodes": 2}`, false},
		{`{"min_nodes": 3}`, true},
		{`{"min_fraction": 0.6}`, false},
		{`{"min_fraction": 0.9}`, true},
	} {
		var c Coverage
		require.NoError(t, json.Unmarshal([]byte(tc.body), &c), tc.body)
		round, err := json.Marshal(c)
		require.NoError(t, err)
		var again Coverage
		require.NoError(t, json.Unmarshal(round, &again))
		require.Equal(t, c, again, "round trip of %s", tc.body)
		err = c.check(two)
		if !tc.refused {
			require.NoError(t, err, tc.body)
			continue
		}
		var ae *apiError
		require.ErrorAs(t, err, &ae, tc.body)
		require.Equal(t, http.StatusConflict, ae.status)
		require.Contains(t, ae.message, "lab-c (unreachable)")
	}
	for _, bad := range []string{`"maybe"`, `{"min_nodes": 0}`, `{"min_fraction": 1.5}`, `{"min_nodes": 1, "min_fraction": 0.5}`, `{}`, `{"nodes": 2}`, `3`} {
		var c Coverage
		require.Error(t, json.Unmarshal([]byte(bad), &c), bad)
	}
	require.Equal(t, QueryCoverage{Nodes: 2, Of: 3, Fraction: 2.0 / 3}, coverageOf(2, 1))
}

// TestCoverageLeavesOutRevoked: a revoked node is no longer of the
// federation: a query's coverage leaves it out, so "deny" still answers,
// unless the query named it.
func TestCoverageLeavesOutRevoked(t *testing.T) {
	t.Parallel()
	excluded := []domain.Exclusion{
		{Name: "x", Reason: domain.ReasonRevoked, Detail: "node is revoked"},
		{Name: "lab-c", Reason: "unreachable"},
	}
	require.Equal(t, []domain.Exclusion{{Name: "lab-c", Reason: "unreachable"}}, members(excluded, nil))
	require.Equal(t, excluded, members(excluded, []string{"x", "lab-c"}))
	require.NotNil(t, members(nil, nil))
	meta := QueryMeta{Included: []string{"lab-a", "lab-b"}, Excluded: members(excluded[:1], nil)}
	require.NoError(t, Coverage{Deny: true}.check(meta))
	require.NoError(t, Coverage{MinFraction: 1}.check(meta))
	meta.Excluded = members(excluded[:1], []string{"lab-a", "x"})
	require.Error(t, Coverage{Deny: true}.check(meta))
}

// TestQueryNodeNames: a query's node list is refused before it is routed
// or echoed when it is too long or holds a name no node can have; a list
// of names none of which is registered is the client's mistake.
func TestQueryNodeNames(t *testing.T) {
	t.Parallel()
	require.NoError(t, checkNodeNames(nil))
	require.NoError(t, checkNodeNames([]string{"lab-a", "x1"}))
	long := strings.Repeat("a", 5000)
	for _, bad := range [][]string{{long}, {"Lab-A"}, {""}, {"lab-a", "lab_b"}, make([]string, maxQueryNodes+1)} {
		err := checkNodeNames(bad)
		var ae *apiError
		require.ErrorAs(t, err, &ae)
		require.Equal(t, http.StatusBadRequest, ae.status)
		require.NotContains(t, ae.message, long)
	}
	gone := domain.Exclusion{Name: "lab-c", Reason: domain.ReasonNotRegistered}
	require.True(t, allUnregistered([]domain.Exclusion{gone}))
	require.False(t, allUnregistered([]domain.Exclusion{gone, {Name: "lab-a", Reason: "unreachable"}}))
	require.False(t, allUnregistered(nil))
}
