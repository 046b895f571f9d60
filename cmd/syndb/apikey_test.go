package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/store"
)

func TestKeyTable(t *testing.T) {
	t.Parallel()
	at := func(s string) *time.Time {
		v, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return &v
	}
	next := int64(3)
	keys := []store.APIKey{
		{ID: 1, Name: "dev", Account: "dev", Role: store.RoleAdmin, Prefix: "sdb_abcdef", CreatedAt: *at("2026-01-02T03:04:05Z"),
			CreatedBy: "syndb dev", LastUsedAt: at("2026-01-03T00:00:00+01:00"), State: store.KeyActive},
		{ID: 2, Name: "ci", Account: "lab-a", Role: store.RoleReader, Prefix: "sdb_zyxwvu", CreatedAt: *at("2026-01-02T03:04:05Z"),
			ExpiresAt: at("2026-02-01T03:04:05Z"), ReplacedBy: &next, State: store.KeyGrace},
	}
	var out bytes.Buffer
	require.NoError(t, writeKeyTable(&out, keys))
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, lines, 3)
	fields := regexpSplit(lines[0])
	require.Equal(t, []string{"ID", "NAME", "ACCOUNT", "ROLE", "PREFIX", "CREATED", "CREATED BY", "EXPIRES", "LAST USED", "STATE"}, fields)
	require.Equal(t, []string{"1", "dev", "dev", "admin", "sdb_abcdef", "2026-01-02 03:04:05Z", "syndb dev", "-", "2026-01-02 23:00:00Z", "active"},
		regexpSplit(lines[1]))
	require.Equal(t, []string{"2", "ci", "lab-a", "reader", "sdb_zyxwvu", "2026-01-02 03:04:05Z", "-", "2026-02-01 03:04:05Z", "-", "grace (by key 3)"},
		regexpSplit(lines[2]))
	// The columns line up: each row's state starts under STATE.
	require.Equal(t, strings.Index(lines[0], "STATE"), strings.Index(lines[1], "active"))
	require.Equal(t, strings.Index(lines[0], "STATE"), strings.Index(lines[2], "grace"))
}

// regexpSplit splits a table line at runs of two spaces or more.
func regexpSplit(line string) []string {
	return regexp.MustCompile(` {2,}`).Split(strings.TrimSpace(line), -1)
}
