package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestETL(t *testing.T) {
	c, err := Load[ETL]()
	require.NoError(t, err)
	require.Equal(t, int64(256<<20), c.MaxUploadBytes)
	require.Equal(t, int64(1<<20), c.MaxCellBytes)

	t.Setenv("SYNDB_ETL_MAX_UPLOAD_BYTES", "1000000")
	c, err = Load[ETL]()
	require.NoError(t, err)
	require.Equal(t, int64(1000000), c.MaxUploadBytes)

	for env, val := range map[string]string{
		"SYNDB_ETL_MAX_UPLOAD_BYTES": "0",
		"SYNDB_ETL_MIN_ROW_BYTES":    "0",
		"SYNDB_ETL_MAX_ROW_BYTES":    "1000", // below the cell cap
		"SYNDB_ETL_MAX_PAGE_BYTES":   "4294967296",
	} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, val)
			_, err := Load[ETL]()
			require.ErrorContains(t, err, env)
		})
	}
}
